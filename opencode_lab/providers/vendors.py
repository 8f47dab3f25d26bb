"""The vendors the environment alone configures: one row each, the one place their names are written.

Settings read each row's variables and ``[lab]`` keys, the session builds the vendors that have a
key, the registry makes each a TOML ``type``, and the tests clear their variables, all from these
rows (registered with `opencode_lab.core.vendors`, which settings read).  Adding a vendor is its
module, one row here, and its tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from ..core.vendors import VENDORS, Vendor, VendorOption

if TYPE_CHECKING:
    from ..core.config import ProviderConfig, Settings

T = TypeVar("T")

#: a ``[providers.X]`` table without ``type =`` is any OpenAI-compatible server
DEFAULT_TYPE = "openai"

ROWS = (
    Vendor(
        "openrouter",
        "opencode_lab.providers.openrouter:from_config",
        key_env=("OPENROUTER_API_KEY",),
        base_url_env="OPENROUTER_BASE_URL",
        default_base_url="https://openrouter.ai/api/v1",
        models_env="OPENROUTER_MODEL_LIST",
        options=(VendorOption("provider_routing", "OC_OPENROUTER_PROVIDER_ROUTING", "provider_routing", None),),
    ),
    Vendor(
        "openai",
        "opencode_lab.providers.openai_api:from_config",
        key_env=("OPENAI_API_KEY",),
        base_url_env="OPENAI_BASE_URL",
        default_base_url="https://api.openai.com/v1",
    ),
    Vendor(
        "anthropic",
        "opencode_lab.providers.anthropic:from_config",
        key_env=("ANTHROPIC_API_KEY",),
        base_url_env="ANTHROPIC_BASE_URL",
        default_base_url="https://api.anthropic.com",  # the official SDK's base_url form: no /v1
        options=(VendorOption("max_tokens", "OC_ANTHROPIC_MAX_TOKENS", "positive_int", 1024),),
    ),
    Vendor(
        "gemini",
        "opencode_lab.providers.gemini:from_config",
        key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),  # GOOGLE_API_KEY wins, as in the SDK
        base_url_env="GEMINI_BASE_URL",
        default_base_url="https://generativelanguage.googleapis.com",  # likewise: no API version
    ),
)

for _row in ROWS:
    VENDORS.register(_row)
VENDORS.default_type = DEFAULT_TYPE


def option(settings: Settings, vendor: str, key: str, kind: type[T], config: ProviderConfig | None = None) -> T:
    """The *key* option of a provider of *vendor*'s type: its own ``[providers.X]`` table's (*config*) when
    that sets it, else the vendor's as *settings* hold it."""
    own = {} if config is None else config.options
    value = own[key] if key in own else settings.vendors[vendor].options[key]
    if not isinstance(value, kind):
        raise TypeError(f"{vendor} option {key!r} is {value!r}, not {kind.__name__}")
    return value
