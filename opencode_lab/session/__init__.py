"""The session: orchestration of one call through cache, router, records and run log, on one owned event loop."""
