"""Operations over image stores: the copy engine (:mod:`.copy`) and, above it, whole runs.

Layer 2 (``tests/unit/test_layers.py``): it speaks :class:`~imagevet.store.ImageStore` only,
never a concrete client, so a registry and an OCI layout are sources and targets alike.
"""
