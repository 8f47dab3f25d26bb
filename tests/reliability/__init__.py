"""Reliability tests: chaos soak, crash and resume, shared caches, secrets, bad input and hangs."""
