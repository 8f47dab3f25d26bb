"""Providers: our transports.  One request in, one normalised completion (or one of our errors) out.

`base` declares the interface and its `Capabilities`; `http`, `sse` and `stream` are the shared HTTP
edge; one codec module per wire format and one thin module per vendor sit on them; types are looked
up by name in `registry`.  Importing the package registers the vendor table (`vendors`) with settings.
"""

from . import vendors as _vendors  # noqa: F401 - registers the vendor table
