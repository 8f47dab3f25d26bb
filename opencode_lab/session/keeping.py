"""What the settings ask of the run log's keeping: the audit trail, its key, and privacy mode."""

from __future__ import annotations

from functools import cache
from typing import Any

from ..core.config import Settings
from .audit import Auditor, config_hash
from .audit_key import AuditKey, load_key
from .privacy import concealer


def audit_key(settings: Settings, *, create: bool = True) -> AuditKey:
    """The audit key the settings name (``OC_AUDIT_KEY``, else the key file, made on first use when *create*)."""
    return load_key(settings.audit_key, settings.audit_key_file, create=create)


def runlog_options(settings: Settings) -> dict[str, Any]:
    """The `RunLog` keywords for *settings*: an auditor unless ``OC_AUDIT`` is off, a concealer in privacy mode;
    both ask for the key once, when the log is first written."""
    key = cache(lambda: audit_key(settings))
    options: dict[str, Any] = {}
    if settings.audit:
        options["auditor"] = Auditor(key, config_hash(settings))
    if settings.privacy:
        options["conceal"] = concealer(key)
    return options
