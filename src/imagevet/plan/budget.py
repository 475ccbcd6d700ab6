"""Docker Hub pull budget: Docker Hub counts manifest GETs as pulls; HEADs are free.

The estimate of one copy (:func:`estimate_pulls`) is 1 for the top manifest, plus 1 per platform
manifest of an index (only the platforms copied), plus 1 per referrer when referrers are copied;
an image never read (no lock record, no details observed) counts as an index of
``UNKNOWN_PLATFORMS`` platforms.  An :class:`~imagevet.plan.actions.Update` adds 1 pull at the
target's registry to read the manifest that the backup tag keeps.  Copies are admitted first,
then updates, each in plan order, as long as every registry involved has pulls left (above
``reserve``); the rest become :class:`~imagevet.plan.actions.Defer` (not failed: the next run
picks them up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from imagevet.lock import LockedImage
from imagevet.manifest import Platform
from imagevet.plan.actions import Action, Copy, Defer, Update

__all__ = ["UNKNOWN_PLATFORMS", "apply_budget", "estimate_pulls"]

UNKNOWN_PLATFORMS = 4
"""Platforms assumed for an image whose index was never read (a conservative guess)."""


def estimate_pulls(
    image: LockedImage | None, platforms: Sequence[Platform] | None, referrers: bool
) -> int:
    """Manifest GETs to copy ``image`` (see the module docstring for the rule)."""
    if image is None:
        return 1 + (len(platforms) if platforms is not None else UNKNOWN_PLATFORMS)
    extra = len(image.referrers) if referrers else 0
    if not image.is_index:
        return 1 + extra
    if not image.platforms:
        children = len(platforms) if platforms is not None else UNKNOWN_PLATFORMS
    elif platforms is None:
        children = len(image.platforms)
    else:
        have = [Platform.parse(p) for p in image.platforms]
        children = sum(1 for h in have if any(p.matches(h) for p in platforms))
    return 1 + children + extra


def apply_budget(
    actions: Sequence[Action], remaining: Mapping[str, int], *, reserve: int = 0
) -> tuple[Action, ...]:
    """Turn the copies and updates that do not fit in ``remaining`` pulls into Defer actions.

    Copies (new tags) are admitted first, then updates, each in the order given; an action is
    admitted when every registry it pulls from still has its pulls left above ``reserve``.
    Registries missing from ``remaining`` are unlimited.  The order of ``actions`` is kept.
    """
    left = {host: n - reserve for host, n in remaining.items()}
    order = sorted(
        (i for i, a in enumerate(actions) if isinstance(a, (Copy, Update))),
        key=lambda i: (0 if isinstance(actions[i], Copy) else 1, i),
    )
    out: list[Action] = list(actions)
    for i in order:
        action = actions[i]
        assert isinstance(action, (Copy, Update))
        costs = action.costs()
        short = [(h, n) for h, n in sorted(costs.items()) if h in left and left[h] < n]
        if short:
            host, need = short[0]
            out[i] = Defer(
                action.entry,
                action,
                f"pull budget: needs {need} pulls at {host}, {max(left[host], 0)} left"
                + (f" (keeping {reserve} in reserve)" if reserve else ""),
            )
            continue
        for host, n in costs.items():
            if host in left:
                left[host] -= n
    return tuple(out)
