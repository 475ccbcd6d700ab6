"""``imagevet watch``: sync on a schedule as a service (see docs/watch.md).

:mod:`.schedule` (intervals, cron, jitter, the pull-budget reset), :mod:`.loop` (the
:class:`~imagevet.watch.loop.Watcher`), :mod:`.metrics` (prometheus-client, its own registry),
:mod:`.http` (``/metrics``, ``/healthz``, ``/readyz`` with aiohttp).  Nothing is imported here:
each module loads its libraries only when the watch runs.
"""
