"""The sync engine: library operations a command or a service calls (no printing, no environment).

The copy engine (:mod:`.copy`) and, above it, whole runs (:mod:`.run`, :mod:`.state`).  It
speaks :class:`~imagevet.store.ImageStore`, never a concrete client, so a registry and an OCI
layout are sources and targets alike.
"""
