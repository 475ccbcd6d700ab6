"""The sync engine: library operations a command or a service calls (no printing, no environment)."""
