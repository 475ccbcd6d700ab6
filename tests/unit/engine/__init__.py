"""Unit tests of the engine: the state store contract, the run without registries."""
