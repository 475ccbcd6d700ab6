"""Unit tests of imagevet.hub: pure parts, no network."""
