"""Routing: the catalog of deployments, the router and its policies (strategies, rate limits, health, back-off)."""
