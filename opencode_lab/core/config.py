"""Settings from environment variables and an optional ``opencode_lab.toml``.

The environment wins over the file, so a notebook can override one value
without editing a shared config.  Each scalar setting is declared once, in
`_SCALARS`, with its default on the `Settings` field; each vendor's (key, base
URL, own settings) once, in its row of the vendor table (`opencode_lab.core.vendors`).
Loading is strict: an unknown table or key, a non-finite or out-of-range number or
a malformed URL raises `ConfigError` naming the variable or the file and key,
because a typo that quietly falls back to a default surfaces later as a surprise
bill or hang.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import platformdirs

from .deployment import Deployment, ModelRules
from .errors import ConfigError, InvalidRequestError
from .files import read_capped
from .objectives import PERIODS, Budgets, Objective, Objectives
from .params import Params, switch_word
from .provider_routing import ProviderRouting
from .residency import patterns
from .secrets import Secret, SecretURL
from .vendors import VENDORS, Vendor

CACHE_MODES = ("file", "memory", "off")
TELEMETRY_MODES = ("off", "otel")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CONFIG_FILE_ENV = "OC_CONFIG"
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")  # underscores: container hostnames use them
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")  # what httpx can encode and h11 will send
_REGION = re.compile(r"^[a-z0-9-]+$")  # AWS (us-east-1) and Google Cloud (europe-west4, global) alike

_T = TypeVar("_T")
Parser = Callable[[str, object], Any]
"""``parse(name, raw) -> value``: *name* is what an error message calls the value."""


@dataclass(frozen=True)
class ProviderConfig:
    """One provider from ``[providers.NAME]`` (or a vendor from the environment): its registered ``type`` builds it.

    Header values are `Secret` (they often carry a key) and ``base_url`` is a `SecretURL`
    (its user-info is a password), so neither shows in a repr.  A type other than the standard
    ones (the vendors' and the default, `VendorTable.standard_types`; e.g. ``dask``, a plugin's)
    may leave ``base_url`` empty and have keys of its own: they arrive raw in ``options`` and its
    factory checks them with `parse_options`.  A vendor's ``options`` are its own settings, parsed.
    """

    name: str
    base_url: str
    type: str = field(default_factory=lambda: VENDORS.default_type)
    api_key: Secret | None = None
    models: tuple[str, ...] = ()
    headers: tuple[tuple[str, Secret], ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    region: str | None = None
    """Where its deployments run (``region``, or Vertex's word ``location``); a deployment may override it."""

    def parse_options(self, kinds: Mapping[str, str]) -> dict[str, Any]:
        """The type's own keys, parsed as settings are: *kinds* maps each key to one of `OPTION_KINDS`.

        An unknown key is refused naming the closest valid one, as every other table's are.
        """
        at = f"[providers.{self.name}]"
        for key in self.options:
            if key not in kinds:
                raise ConfigError(f"{at} has unknown key {key!r}{_hint(key, [*kinds, *_PROVIDER_KEYS])}")
        given = {key: kind for key, kind in kinds.items() if key in self.options}
        return {key: OPTION_KINDS[kind](f"{at} {key}", self.options[key]) for key, kind in given.items()}


@dataclass(frozen=True)
class SelectorConfig:
    """TOML ``[selectors.NAME]``: a selector file (``Selector.save``) and at most one rule to choose by."""

    path: Path
    target: float | None = None
    budget: float | None = None
    willingness_to_pay: float | None = None


@dataclass(frozen=True)
class Settings:
    """Everything configurable, resolved once; the session reads it and nothing else does."""

    local_threads: int | None = None  # None: the cores this process may use, at most 4
    cache_mode: str = "file"
    cache_ttl_ms: int | None = None
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    runlog: Path | None = None  # `load` defaults it to cache_dir / "runs.sqlite"
    log_level: str = "WARNING"
    agent_max_iter: int = 3
    timeout_s: float = 60.0
    max_concurrency: int = 8
    strategy: str = "round_robin"
    max_retries: int = 2
    deadline_s: float = 300.0
    breaker_failures: int = 5
    breaker_failure_rate: float = 0.5
    breaker_window: int = 20
    breaker_min_calls: int = 10
    breaker_cooldown_s: float = 30.0
    retry_after_cap_s: float = 300.0
    rate_window_s: float = 60.0
    default_models: tuple[str, ...] = ()
    telemetry: str = "off"
    slo: Objectives = field(default_factory=Objectives)
    budget: Budgets = field(default_factory=Budgets)
    regions: tuple[str, ...] = ()
    """The lab-wide residency rule (glob patterns): no request reaches a deployment outside it."""
    home_region: str | None = None
    """The region (a glob pattern) the ``nearest`` strategy prefers while one there can be sent to."""
    audit: bool = True
    """Chain every record of the run log and sign its checkpoints (see `opencode_lab.session.audit`)."""
    privacy: bool = False
    """Keep prompts and answers only as keyed hashes in the run log, and no answers on disk."""
    audit_key_file: Path = field(default_factory=lambda: default_audit_key_file())
    audit_key: Secret | None = None  # OC_AUDIT_KEY, read from the environment only (as API keys are)
    vendors: Mapping[str, ProviderConfig] = field(default_factory=lambda: _vendors({}, {}, "config"))
    """Every registered vendor's settings, by name; one is used when it has a key (or a model list)."""
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    models: Mapping[str, tuple[Deployment, ...]] = field(default_factory=dict)
    model_params: Mapping[str, Params] = field(default_factory=dict)
    """Request parameters a ``[models.NAME]`` table declares (``reasoning_effort``, ``options``...), by name."""
    rules: Mapping[str, ModelRules] = field(default_factory=dict)
    """Per ``[models.NAME]``, its residency rule and OpenRouter provider preferences."""
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    selectors: Mapping[str, SelectorConfig] = field(default_factory=dict)
    """Saved learned selectors by the model name that asks through them (TOML ``[selectors.NAME]``)."""
    source: Path | None = None

    def __post_init__(self) -> None:
        """Settings built directly (not by `load`) get their types checked: ``timeout_s="5"`` or ``cache_dir=5``
        would otherwise fail far from here, or not at all."""
        for f in fields(self):
            kinds = [kind.strip() for kind in str(f.type).split("|")]
            allowed = tuple(t for kind in kinds for t in _FIELD_TYPES.get(kind, ()))
            value = getattr(self, f.name)
            if not allowed or (value is None and "None" in kinds):
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, allowed)
                or (isinstance(value, tuple) and not all(isinstance(v, str) for v in value))
                or (isinstance(value, float) and not math.isfinite(value))
            ):
                raise ConfigError(f"Settings {f.name} must be {' or '.join(kinds)}, got {value!r}")

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from *path* (or ``$OC_CONFIG``, or ``./opencode_lab.toml`` if present) and *env*."""
        env = os.environ if env is None else env
        if path is None:
            path = env.get(CONFIG_FILE_ENV) or ("opencode_lab.toml" if Path("opencode_lab.toml").is_file() else None)
        doc = _read_toml(Path(path)) if path else {}
        return _from_sources(doc, env, Path(path) if path else None)


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "Path": (Path,),
    "Secret": (Secret,),
    "tuple[str, ...]": (tuple,),
}


def default_audit_key_file() -> Path:
    """The audit key's file, in the per-user config folder: outside the cache folder the run log lives in."""
    return Path(platformdirs.user_config_dir("opencode_lab")) / "audit.key"


def default_cache_dir() -> Path:
    """The per-user cache folder of this platform (honours ``$XDG_CACHE_HOME`` on Linux)."""
    return Path(platformdirs.user_cache_dir("opencode_lab"))


# -- parsers: strict, because a value that is wrong here fails far from its cause later ----------------


def _text(name: str, raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{name} must be a non-empty string, got {raw!r}")
    return raw.strip()


def _plain(name: str, raw: object, *, fold: bool = False) -> str:
    """A registered name (which ones exist is checked by the session, where the registries are known)."""
    text = _text(name, raw)
    text = text.lower().replace("-", "_") if fold else text
    if not _NAME.match(text):
        raise ConfigError(f"{name} must be a plain name, got {raw!r}")
    return text


def _choice(options: tuple[str, ...], name: str, raw: object) -> str:
    text = _text(name, raw).lower()
    for option in options:
        if option.lower() == text:
            return option
    raise ConfigError(f"{name} must be one of {', '.join(options)}, got {raw!r}")


class _EnvText(str):
    """A value read from the environment, where every value is text: the one place a number may be written
    as a string (in TOML or a keyword, ``"5"`` for a number is a mistake, refused)."""

    __slots__ = ()


#: the largest whole-number setting (beyond it, deques, timedeltas and sockets overflow)
_MAX_INT = 2**31 - 1


def _number(name: str, raw: object, *, kind: type, low: float, above: bool = False, high: float | None = None) -> Any:
    """A finite int or float within bounds; booleans are not numbers, an int setting takes no float, text is
    a number only from the environment, and a whole number is at most `_MAX_INT` unless *high* says."""
    value = None
    high = _MAX_INT if high is None and kind is int else high
    if isinstance(raw, str) and not isinstance(raw, _EnvText):
        raise ConfigError(f"{name} must be a number, not the text {raw!r} (write it without quotes)")
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            value = kind(raw.strip())
    elif isinstance(raw, int | float) and not isinstance(raw, bool) and (kind is float or isinstance(raw, int)):
        value = kind(raw)
    noun = "whole number" if kind is int else "number"
    if value is None or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite {noun}, got {raw!r}")
    if value < low or (above and value == low) or (high is not None and value > high):
        bound = f"greater than {_shown(low)}" if above else f"at least {_shown(low)}"
        bound += f" and at most {_shown(high)}" if high is not None else ""
        raise ConfigError(f"{name} must be a {noun} {bound}, got {raw!r}")
    return value


def _shown(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


_count = partial(_number, kind=int, low=0)
_positive_int = partial(_number, kind=int, low=1)
_milliseconds = partial(_number, kind=int, low=1, high=10**12)  # 31 years: a timedelta of more overflows
_positive = partial(_number, kind=float, low=0, above=True)
_price = partial(_number, kind=float, low=0)
_fraction = partial(_number, kind=float, low=0, above=True, high=1)
_word = partial(_plain, fold=True)


def _strings(name: str, raw: object) -> tuple[str, ...]:
    """A list of non-empty strings (``[]`` is none); from the environment, comma-separated."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise ConfigError(f"{name} must be a list (comma-separated in a variable), got {raw!r}")
    if not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{name} must be a list of strings, got {raw!r}")
    if not all(i.strip() for i in items):
        raise ConfigError(f"{name} has an empty item: {raw!r} (expected e.g. 'openai/gpt-4o-mini,meta/llama-3-8b')")
    return tuple(i.strip() for i in items)


def _flag(name: str, raw: object) -> bool:
    """A TOML boolean, or from the environment 1/true/yes/on or 0/false/no/off."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, _EnvText) and (value := switch_word(raw)) is not None:
        return value
    raise ConfigError(f"{name} must be true or false (in a variable: 1/0, true/false, yes/no, on/off), got {raw!r}")


def _secret(name: str, raw: object) -> Secret:
    return Secret(_text(name, raw))


def _path(name: str, raw: object) -> Path:
    return Path(os.path.expanduser(_text(name, raw)))


def _checked(check: Callable[[str, object], _T], name: str, raw: object) -> _T:
    """A value checked as a request's is, its `InvalidRequestError` raised as the `ConfigError` of a setting."""
    try:
        return check(name, raw)
    except InvalidRequestError as exc:
        raise ConfigError(exc.message) from None


def _region_patterns(name: str, raw: object) -> tuple[str, ...]:
    """Region patterns (``["eu-*"]``; from the environment, comma-separated)."""
    return _checked(patterns, name, raw.split(",") if isinstance(raw, _EnvText) else raw)


def _provider_routing(name: str, raw: object) -> ProviderRouting:
    """OpenRouter provider preferences: a TOML table, or JSON object text in a variable."""
    return _checked(lambda where, value: ProviderRouting.of(value, where), name, raw)


def _region(name: str, raw: object) -> str:
    """A cloud region's name, as the clouds write them: lowercase letters, digits and hyphens."""
    text = _text(name, raw)
    if not _REGION.match(text):
        raise ConfigError(f"{name} must be a region of lowercase letters, digits and '-' (e.g. us-east-1), got {raw!r}")
    return text


def _runlog(name: str, raw: object) -> Path | None:
    if raw is False or (isinstance(raw, str) and raw.strip().lower() in ("off", "0", "false")):
        return None
    return _path(name, raw)


def _url(name: str, raw: object) -> SecretURL:
    """An http(s) URL whose host and port could be connected to: refused now rather than on the first call.

    httpx, which will send the requests, must accept it too (its IDNA and character rules are stricter).
    """
    import httpx

    text = _text(name, raw).rstrip("/")
    try:
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
        if port == 0:
            raise ValueError("Port out of range 1-65535")
        if "[" in parts.netloc.rpartition("@")[2]:
            ipaddress.IPv6Address(host or "")
        elif host and re.fullmatch(r"[\d.]+", host):
            ipaddress.IPv4Address(host)
        elif host:
            ascii_host = host.rstrip(".").encode("idna")
            ascii_host.decode("idna")  # round trip: refuses invalid punycode such as xn--a
            if not all(_LABEL.match(label) for label in ascii_host.decode("ascii").split(".")):
                raise ValueError(f"{host!r} is not a valid host name")
        if parts.query or parts.fragment:  # the request path would be appended to them
            raise ValueError("a base URL takes no ?query or #fragment")
        httpx.URL(text)
    except (ValueError, UnicodeError, httpx.InvalidURL) as exc:
        raise ConfigError(f"{name} is not a valid URL ({exc}): {raw!r}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"{name} must be an http(s) URL with a host, got {raw!r}")
    return SecretURL(text)


# -- the declaration: one row per scalar setting; its default is the Settings field default -------------

_SCALARS: tuple[tuple[str, str, str, str, Parser], ...] = (
    # field, environment variable, TOML table, key, parser (each vendor's settings come from its row: `_vendor`)
    ("local_threads", "OC_LOCAL_THREADS", "lab", "local_threads", _positive_int),
    ("cache_mode", "OC_CACHE_MODE", "cache", "mode", partial(_choice, CACHE_MODES)),
    ("cache_ttl_ms", "OC_CACHE_TTL_MS", "cache", "ttl_ms", _milliseconds),
    ("cache_dir", "OC_CACHE_DIR", "cache", "dir", _path),
    ("runlog", "OC_RUNLOG", "lab", "runlog", _runlog),
    ("log_level", "LOG_LEVEL", "lab", "log_level", partial(_choice, LOG_LEVELS)),
    ("agent_max_iter", "AGENT_MAX_ITER", "lab", "agent_max_iter", _positive_int),
    ("timeout_s", "OC_TIMEOUT_S", "lab", "timeout_s", _positive),
    ("max_concurrency", "OC_MAX_CONCURRENCY", "lab", "max_concurrency", _positive_int),
    ("strategy", "OC_STRATEGY", "lab", "strategy", _word),
    ("max_retries", "OC_MAX_RETRIES", "lab", "max_retries", _count),
    ("deadline_s", "OC_DEADLINE_S", "lab", "deadline_s", _positive),
    ("breaker_failures", "OC_BREAKER_FAILURES", "lab", "breaker_failures", _positive_int),
    ("breaker_failure_rate", "OC_BREAKER_FAILURE_RATE", "lab", "breaker_failure_rate", _fraction),
    ("breaker_window", "OC_BREAKER_WINDOW", "lab", "breaker_window", _positive_int),
    ("breaker_min_calls", "OC_BREAKER_MIN_CALLS", "lab", "breaker_min_calls", _positive_int),
    ("breaker_cooldown_s", "OC_BREAKER_COOLDOWN_S", "lab", "breaker_cooldown_s", _positive),
    ("retry_after_cap_s", "OC_RETRY_AFTER_CAP_S", "lab", "retry_after_cap_s", _positive),
    ("rate_window_s", "OC_RATE_WINDOW_S", "lab", "rate_window_s", _positive),
    ("default_models", "OC_DEFAULT_MODELS", "lab", "default_models", _strings),
    ("telemetry", "OC_TELEMETRY", "lab", "telemetry", partial(_choice, TELEMETRY_MODES)),
    ("regions", "OC_REGIONS", "lab", "regions", _region_patterns),
    ("home_region", "OC_HOME_REGION", "lab", "home_region", _region),
    ("audit", "OC_AUDIT", "lab", "audit", _flag),
    ("privacy", "OC_PRIVACY", "lab", "privacy", _flag),
    ("audit_key_file", "OC_AUDIT_KEY_FILE", "lab", "audit_key_file", _path),
)
AUDIT_KEY_ENV = "OC_AUDIT_KEY"
_TABLES: dict[str, frozenset[str]] = {
    **{t: frozenset(k for _, _, table, k, _ in _SCALARS if table == t) for t in ("lab", "cache")},
    # keys are names; a provider's own keys are _PROVIDER_KEYS, a deployment's _DEPLOYMENT_KEYS
    **dict.fromkeys(("providers", "models", "aliases", "selectors"), frozenset[str]()),
    "slo": frozenset(("availability", "latency_p95_s")),  # and [slo.SCOPE] tables with the same keys
    "budget": frozenset((*(f"{period}_usd" for period in PERIODS), "warn_at")),
}
_PROVIDER_KEYS = ("base_url", "type", "api_key_env", "models", "headers", "region", "location")
#: what a provider type's own key can be (`ProviderConfig.parse_options`)
OPTION_KINDS: dict[str, Parser] = {
    "text": _text,
    "count": _count,
    "positive_int": _positive_int,
    "positive": _positive,
    "strings": _strings,
    "path": _path,
    "provider_routing": _provider_routing,
}
_DEPLOYMENT_KEYS: dict[str, tuple[str, Parser]] = {  # TOML key: (Deployment field, parser)
    **{key: (key, _text) for key in ("provider", "upstream", "path")},
    **{key: (key, _positive) for key in ("weight", "rpm", "tpm")},
    **{key: (key, _positive_int) for key in ("max_in_flight", "context_length")},
    **{f"{key}_price": (f"{key}_price_per_mtok", _price) for key in ("input", "output", "cached_input")},
    "cache_write_price": ("cache_write_price_per_mtok", _price),
    "request_fee": ("request_fee_usd", _price),
    "tags": ("tags", _strings),
    "region": ("region", _region),
}
#: a ``[models.NAME]`` table's own keys, about the model name rather than one deployment
_RULE_KEYS: dict[str, Parser] = {"regions": _region_patterns, "provider_routing": _provider_routing}


#: the request parameters a ``[models.*]`` table may declare for its model
MODEL_PARAMS = ("temperature", "max_tokens", "top_p", "reasoning_effort", "reasoning_budget", "options")

#: the largest config file read
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def _read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at *path*: a regular UTF-8 file of at most `MAX_CONFIG_BYTES` (a folder, a device or
    a binary file is a `ConfigError` naming it, as is nesting too deep for the parser)."""
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = read_capped(path, MAX_CONFIG_BYTES, f"config file {path}").decode("utf-8")
        return tomllib.loads(text)
    except InvalidRequestError as exc:
        raise ConfigError(exc.message) from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text, as TOML is") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nest too deeply") from None


def _from_sources(doc: Mapping[str, Any], env: Mapping[str, str], source: Path | None) -> Settings:
    where = str(source) if source else "config"
    known = {**_TABLES, "lab": _TABLES["lab"] | {key for vendor in VENDORS for key in _vendor_keys(vendor)}}
    for key in doc:
        if key not in known:
            home = [f"; did you mean [{t}] {key}?" for t, keys in known.items() if key in keys]
            raise ConfigError(f"{where}: unknown table [{key}]{home[0] if home else _hint(key, known)}")
    tables = {name: _table(doc, name, where) for name in known}
    for name in ("lab", "cache"):
        _reject_unknown(tables[name], known[name], f"{where}: [{name}]")

    given: dict[str, Any] = {}
    names: dict[str, str] = {}  # what an error calls each setting: the variable, or the table and key
    for attr, var, table, key, parse in _SCALARS:
        names[attr] = var
        text = env.get(var, "")
        if not isinstance(text, str):
            raise ConfigError(f"{var} must be text, as environment variables are, got {text!r}")
        if text.strip():
            given[attr] = parse(var, _EnvText(text))
        elif key in tables[table]:
            names[attr] = f"[{table}] {key}"
            given[attr] = parse(f"{where}: {names[attr]}", tables[table][key])
    defaults = {f.name: _default(f) for f in fields(Settings)}
    values = {attr: defaults[attr] for attr in names} | given
    if "runlog" not in given:
        values["runlog"] = values["cache_dir"] / "runs.sqlite"
    low, high = (f"{names[a]} ({values[a]})" for a in ("breaker_min_calls", "breaker_window"))
    if values["breaker_min_calls"] > values["breaker_window"]:
        prefix = f"{where}: " if "[" in low + high else ""
        raise ConfigError(f"{prefix}{low} must be at most {high}: the breaker's window holds no more calls")
    audit_key = env.get(AUDIT_KEY_ENV, "")
    return Settings(
        **values,
        audit_key=_secret(AUDIT_KEY_ENV, audit_key) if audit_key.strip() else None,
        vendors=_vendors(tables["lab"], env, where),
        providers=_providers(tables["providers"], env, where),
        models=_models(tables["models"], where),
        model_params=_model_params(tables["models"], where),
        rules=_rules(tables["models"], where),
        aliases=_aliases(tables["aliases"], where),
        slo=_objectives(tables["slo"], where),
        budget=_budgets(tables["budget"], where),
        selectors=_selectors(tables["selectors"], where, source),
        source=source,
    )


def _default(setting: Field[Any]) -> Any:
    """A `Settings` field's default, made afresh when it has a factory."""
    if setting.default_factory is not MISSING:
        return setting.default_factory()
    return setting.default


def _vendor_keys(vendor: Vendor) -> list[str]:
    """Its ``[lab]`` keys (never its API key: keys are read from the environment only)."""
    settings = ["base_url", *(["model_list"] if vendor.models_env else []), *(o.name for o in vendor.options)]
    return [vendor.toml_key(setting) for setting in settings]


def _vendors(lab: Mapping[str, Any], env: Mapping[str, str], where: str) -> dict[str, ProviderConfig]:
    return {vendor.name: _vendor(vendor, lab, env, where) for vendor in VENDORS}


def _vendor(vendor: Vendor, lab: Mapping[str, Any], env: Mapping[str, str], where: str) -> ProviderConfig:
    """One vendor's settings, each from its variable, else its ``[lab]`` key, else the row's default."""

    def read(var: str, setting: str, parse: Parser, default: object) -> Any:
        if env.get(var, "").strip():
            return parse(var, _EnvText(env[var]))
        key = vendor.toml_key(setting)
        return parse(f"{where}: [lab] {key}", lab[key]) if key in lab else default

    keys = [_secret(var, env[var]) for var in vendor.key_env if env.get(var, "").strip()]
    return ProviderConfig(
        name=vendor.name,
        base_url=read(vendor.base_url_env, "base_url", _url, vendor.default_base_url),
        type=vendor.name,
        api_key=keys[-1] if keys else None,
        models=read(vendor.models_env, "model_list", _strings, ()) if vendor.models_env else (),
        options={o.name: read(o.env, o.name, OPTION_KINDS[o.kind], o.default) for o in vendor.options},
    )


def _hint(key: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(known)) or 'none'})"


def _reject_unknown(table: Mapping[str, Any], known: Collection[str], at: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"{at} has unknown key {key!r}{_hint(key, known)}")


def _table(doc: Mapping[str, Any], key: str, at: str) -> Mapping[str, Any]:
    table = doc.get(key, {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{at}: [{key}] must be a table")
    return table


def _providers(table: Mapping[str, Any], env: Mapping[str, str], where: str) -> dict[str, ProviderConfig]:
    out = {}
    for name, spec in table.items():
        at = f"{where}: [providers.{name}]"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{at} must be a table with a base_url")
        kind = _plain(f"{at} type", spec.get("type", VENDORS.default_type))
        vendor = VENDORS.get(kind)
        own = {o.name: o.kind for o in vendor.options} if vendor else {}
        if kind in VENDORS.standard_types():
            _reject_unknown(spec, [*_PROVIDER_KEYS, *own], at)
            if "base_url" not in spec:
                raise ConfigError(f"{at} needs a base_url")
        if not _NAME.match(name):
            raise ConfigError(f"{at}: name must be a plain word")
        key_env = _text(f"{at} api_key_env", spec["api_key_env"]) if "api_key_env" in spec else None
        headers = spec.get("headers", {})
        if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
            raise ConfigError(f"{at} headers must be a table of strings")
        for header, value in headers.items():
            if not _HEADER_NAME.match(header) or not _HEADER_VALUE.match(value):  # the value may be a key: not shown
                raise ConfigError(f"{at} headers: {header!r} needs a plain name and a printable ASCII value")
        key = env.get(key_env, "").strip() if key_env else ""
        if "region" in spec and "location" in spec:
            raise ConfigError(f"{at} has both region and location, which mean the same; keep one")
        place = next((k for k in ("region", "location") if k in spec), None)
        out[name] = ProviderConfig(
            name=name,
            type=kind,
            base_url=_url(f"{at} base_url", spec["base_url"]) if "base_url" in spec else "",
            api_key=Secret(key) if key else None,
            models=_strings(f"{at} models", spec["models"]) if "models" in spec else (),
            headers=tuple((str(k), Secret(v, mask_short=False)) for k, v in headers.items()),
            options={
                k: OPTION_KINDS[own[k]](f"{at} {k}", v) if k in own else v
                for k, v in spec.items()
                if k not in _PROVIDER_KEYS
            },
            region=_region(f"{at} {place}", spec[place]) if place else None,
        )
    return out


def _models(table: Mapping[str, Any], where: str) -> dict[str, tuple[Deployment, ...]]:
    out: dict[str, tuple[Deployment, ...]] = {}
    for model, spec in table.items():
        at = f"{where}: [models.{model}]"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{at} must be a table")
        if "deployments" not in spec:
            _reject_unknown(spec, [*_DEPLOYMENT_KEYS, *_RULE_KEYS, *MODEL_PARAMS, "deployments"], at)
            own = {k: v for k, v in spec.items() if k not in _RULE_KEYS and k not in MODEL_PARAMS}
            out[model] = (_deployment(model, own, at),)
            continue
        _reject_unknown(spec, ["deployments", *_RULE_KEYS, *MODEL_PARAMS], at)
        entries = spec["deployments"]
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{at} deployments must be a non-empty array of tables")
        at = f"{where}: [[models.{model}.deployments]]"
        out[model] = tuple(_deployment(model, entry, f"{at} #{i + 1}") for i, entry in enumerate(entries))
    return out


def _rules(table: Mapping[str, Any], where: str) -> dict[str, ModelRules]:
    """Each ``[models.NAME]``'s residency rule and provider preferences (the tables were checked by `_models`)."""
    out = {}
    for model, spec in table.items():
        given = {k: parse(f"{where}: [models.{model}] {k}", spec[k]) for k, parse in _RULE_KEYS.items() if k in spec}
        if given:
            out[model] = ModelRules(**given)
    return out


def _deployment(model: str, entry: object, at: str) -> Deployment:
    """A `Deployment` built straight from the TOML keys, so its own defaults apply to keys left out."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{at} must be a table")
    _reject_unknown(entry, _DEPLOYMENT_KEYS, at)
    if "provider" not in entry:
        raise ConfigError(f'{at} needs a provider (e.g. provider = "openrouter")')
    kwargs = {attr: parse(f"{at} {key}", entry[key]) for key, (attr, parse) in _DEPLOYMENT_KEYS.items() if key in entry}
    kwargs.setdefault("upstream", model)
    return Deployment(id=f"{kwargs['provider']}/{kwargs['upstream']}", **kwargs)


def _model_params(table: Mapping[str, Any], where: str) -> dict[str, Params]:
    """The request parameters each ``[models.*]`` table declares for its model, validated as a call's are
    (``o3-low`` and ``o3-high``: one upstream model asked two ways)."""
    out = {}
    for model, spec in table.items():
        given = {key: spec[key] for key in MODEL_PARAMS if key in spec} if isinstance(spec, Mapping) else {}
        try:
            params = Params.build(**given)
        except InvalidRequestError as exc:
            raise ConfigError(f"{where}: [models.{model}] {exc}") from None
        if params != Params():
            out[model] = params
    return out


def _aliases(table: Mapping[str, Any], where: str) -> dict[str, tuple[str, ...]]:
    aliases: dict[str, tuple[str, ...]] = {}
    for name, target in table.items():
        items = [target] if isinstance(target, str) else target
        if not isinstance(items, list) or not items or not all(isinstance(t, str) and t.strip() for t in items):
            raise ConfigError(f"{where}: [aliases] {name} must be a model id or a non-empty list of ids")
        aliases[name] = tuple(t.strip() for t in items)
    _reject_cycles(aliases, where)
    return aliases


_SELECTOR_RULES = {
    "target": partial(_number, kind=float, low=-math.inf),
    "budget": _price,
    "willingness_to_pay": _price,
}


def _selectors(table: Mapping[str, Any], where: str, source: Path | None) -> dict[str, SelectorConfig]:
    """``[selectors.NAME]`` tables: ``path`` (relative to the config file) and one of `_SELECTOR_RULES`."""
    out = {}
    for name, spec in table.items():
        at = f"{where}: [selectors.{name}]"
        if not isinstance(spec, Mapping) or "path" not in spec:
            raise ConfigError(f'{at} must be a table with path = "..." (a file written by Selector.save)')
        _reject_unknown(spec, ["path", *_SELECTOR_RULES], at)
        path = _path(f"{at} path", spec["path"])
        if source is not None and not path.is_absolute():
            path = source.parent / path
        rules = {key: parse(f"{at} {key}", spec[key]) for key, parse in _SELECTOR_RULES.items() if key in spec}
        if len(rules) > 1:
            raise ConfigError(f"{at}: give one of {', '.join(_SELECTOR_RULES)}, not {' and '.join(rules)}")
        out[name] = SelectorConfig(path, **rules)
    return out


#: the longest chain of aliases naming aliases
MAX_ALIAS_DEPTH = 32


def _reject_cycles(aliases: Mapping[str, tuple[str, ...]], where: str) -> None:
    """Fallback chains must be finite and short: an alias may not reach itself through other aliases, nor
    pass through more than `MAX_ALIAS_DEPTH` of them (walked without recursion, so any file is refused clearly)."""
    for name in aliases:
        stack: list[tuple[str, ...]] = [(name,)]
        while stack:
            path = stack.pop()
            if len(path) > MAX_ALIAS_DEPTH:
                chain = " -> ".join(path[:3])
                raise ConfigError(f"{where}: [aliases] chain {chain} -> ... passes over {MAX_ALIAS_DEPTH} aliases")
            for target in aliases.get(path[-1], ()):
                if target in path:
                    raise ConfigError(f"{where}: [aliases] form a cycle: {' -> '.join((*path, target))}")
                stack.append((*path, target))


def _availability(name: str, raw: object) -> float:
    """A share of successful attempts below 1: an objective of 100 % leaves no error budget to burn."""
    value: float = _fraction(name, raw)
    if value == 1:
        raise ConfigError(f"{name} must be below 1 (e.g. 0.999): an objective of 100 % leaves no error budget")
    return value


def _objective(table: Mapping[str, Any], at: str) -> Objective:
    _reject_unknown(table, _TABLES["slo"], at)
    return Objective(
        availability=_availability(f"{at} availability", table["availability"]) if "availability" in table else None,
        latency_p95_s=_positive(f"{at} latency_p95_s", table["latency_p95_s"]) if "latency_p95_s" in table else None,
    )


def _objectives(table: Mapping[str, Any], where: str) -> Objectives:
    """``[slo]``: default keys, and one sub-table per deployment id, model spec or provider name."""
    scoped = {}
    for scope, spec in table.items():
        if isinstance(spec, Mapping):
            scoped[scope] = _objective(spec, f"{where}: [slo.{scope}]")
    default = {key: value for key, value in table.items() if key not in scoped}
    return Objectives(_objective(default, f"{where}: [slo]"), scoped)


def _budgets(table: Mapping[str, Any], where: str) -> Budgets:
    """``[budget]``: ``day_usd``, ``week_usd``, ``month_usd`` and ``warn_at``, the share that warns."""
    at = f"{where}: [budget]"
    _reject_unknown(table, _TABLES["budget"], at)
    limits = {p: _positive(f"{at} {p}_usd", table[f"{p}_usd"]) for p in PERIODS if f"{p}_usd" in table}
    warn_at = _fraction(f"{at} warn_at", table["warn_at"]) if "warn_at" in table else Budgets.warn_at
    return Budgets(limits, warn_at)
