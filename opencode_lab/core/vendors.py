"""The vendors the environment alone configures: the shape of one row, and the table the providers fill.

Settings must know every vendor's variables and ``[lab]`` keys when they are read, yet core sits
below the providers and never imports them.  So the rows are written once, in
`opencode_lab.providers.vendors`, and registered here when that package is imported (importing
`opencode_lab` does it); a plug-in package registers a vendor of its own the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class VendorOption:
    """A vendor's own setting: ``options[name]`` of its `ProviderConfig`, from *env* or ``[lab] VENDOR_NAME``."""

    name: str
    env: str
    kind: str
    """One of `opencode_lab.core.config.OPTION_KINDS`."""
    default: object


@dataclass(frozen=True)
class Vendor:
    """A provider the environment alone configures: a key in any of `key_env` (a later one wins) turns it
    on, as does a model list in `models_env` when it has one (that list is also the rotation pool).

    Its ``[lab]`` keys are ``NAME_base_url``, ``NAME_model_list`` and ``NAME_<option>``; keys are read
    from the environment only, so they stay out of shared files.
    """

    name: str
    """The provider's name, the ``NAME/`` of its model ids, and the TOML ``type`` that builds one like it."""
    factory: str
    """``"package.module:callable"``, the `ProviderFactory` that builds it, imported on first use."""
    key_env: tuple[str, ...]
    base_url_env: str
    default_base_url: str
    models_env: str | None = None
    options: tuple[VendorOption, ...] = ()

    def toml_key(self, setting: str) -> str:
        """Its ``[lab]`` key for *setting* (``base_url``, ``model_list`` or an option's name)."""
        return f"{self.name}_{setting}"

    @property
    def variables(self) -> tuple[str, ...]:
        """Every environment variable it reads."""
        models = (self.models_env,) if self.models_env else ()
        return (*self.key_env, self.base_url_env, *models, *(o.env for o in self.options))


class VendorTable:
    """The registered vendors, in registration order, and the type a ``[providers.X]`` table has when it names none."""

    def __init__(self) -> None:
        self._rows: dict[str, Vendor] = {}
        self._lock = threading.Lock()
        self.default_type = ""

    def register(self, vendor: Vendor) -> None:
        """Add *vendor*, or replace the one of the same name."""
        with self._lock:
            self._rows[vendor.name] = vendor

    def __iter__(self) -> Iterator[Vendor]:
        return iter(tuple(self._rows.values()))

    def get(self, name: str) -> Vendor | None:
        return self._rows.get(name)

    def standard_types(self) -> frozenset[str]:
        """The types whose ``[providers.X]`` keys are all the standard ones, and which need a ``base_url``."""
        return frozenset({*self._rows, self.default_type})

    @property
    def variables(self) -> tuple[str, ...]:
        """Every environment variable any vendor reads."""
        return tuple(var for vendor in self for var in vendor.variables)


VENDORS = VendorTable()
