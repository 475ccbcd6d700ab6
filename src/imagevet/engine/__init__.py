"""The sync engine: library operations a command or a service calls (no printing, no environment).

:mod:`.copy` copies one image between any two :class:`~imagevet.store.ImageStore` (it names no
concrete client, so a registry and an OCI layout are sources and targets alike); :mod:`.run`
runs a whole sync and :mod:`.state` keeps its state.
"""
