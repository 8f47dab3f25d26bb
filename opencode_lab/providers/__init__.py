"""Providers: our transports.  One request in, one normalised completion (or one of our errors) out.

One module per wire format; types are looked up by name in `registry`.
"""
