"""Integration tests: real ``docker-registry`` processes, token server, fault proxy, fake registry."""
