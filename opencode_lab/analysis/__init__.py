"""Analysis of results frames: statistics and comparison plots (depends on core only)."""
