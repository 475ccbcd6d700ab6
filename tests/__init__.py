"""imagevet's test suite (a package, so ``from tests.support.images import ...`` works from any test)."""
