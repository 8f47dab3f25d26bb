"""The default Lab behind the module-level functions and the magics, built from the environment on first use."""

from __future__ import annotations

import threading

from .lab import Lab

_default: Lab | None = None
_lock = threading.Lock()


def default_lab() -> Lab:
    """The Lab behind ``opencode_lab.chat`` & co., built from the environment on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = Lab.from_env()
        return _default


def set_default_lab(lab: Lab | None) -> None:
    """Replace (or with None, forget) the default Lab, e.g. after changing environment variables."""
    global _default
    with _lock:
        _default = lab
