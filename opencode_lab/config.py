"""Settings from environment variables and an optional ``opencode_lab.toml``.

The environment wins over the file, so a notebook can override one value
without editing a shared config.  Every invalid value raises `ConfigError`
naming the variable (or the file and line) before anything is sent.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._secrets import Secret
from .errors import ConfigError

CACHE_MODES = ("file", "memory", "off")
STRATEGIES = ("round_robin", "weighted", "least_latency", "least_busy", "cost")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
CONFIG_FILE_ENV = "OC_CONFIG"
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


@dataclass(frozen=True)
class ProviderConfig:
    """A custom OpenAI-compatible endpoint from ``[providers.NAME]``."""

    name: str
    base_url: str
    api_key: Secret | None = None
    models: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DeploymentConfig:
    """One way to serve a model name: a provider plus the upstream model id and its limits."""

    model: str
    provider: str
    upstream: str
    weight: float = 1.0
    rpm: float | None = None
    tpm: float | None = None
    max_in_flight: int | None = None
    input_price_per_mtok: float | None = None
    output_price_per_mtok: float | None = None
    context_length: int | None = None
    tags: tuple[str, ...] = ()
    path: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything configurable, resolved once; `Lab` reads it and nothing else does."""

    openrouter_api_key: Secret | None = None
    openrouter_base_url: str = DEFAULT_OPENROUTER_BASE_URL
    openrouter_model_list: tuple[str, ...] = ()
    openai_api_key: Secret | None = None
    openai_base_url: str = DEFAULT_OPENAI_BASE_URL
    cache_mode: str = "file"
    cache_ttl_ms: int | None = None
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    runlog: Path | None = None
    log_level: str = "WARNING"
    agent_max_iter: int = 3
    timeout_s: float = 60.0
    max_concurrency: int = 8
    strategy: str = "round_robin"
    max_retries: int = 2
    deadline_s: float = 300.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    rate_window_s: float = 60.0
    default_models: tuple[str, ...] = ()
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    deployments: tuple[DeploymentConfig, ...] = ()
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    source: Path | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from *path* (or ``$OC_CONFIG``, or ``./opencode_lab.toml`` if present) and *env*."""
        env = os.environ if env is None else env
        if path is None:
            path = env.get(CONFIG_FILE_ENV) or ("opencode_lab.toml" if Path("opencode_lab.toml").is_file() else None)
        doc = _read_toml(Path(path)) if path else {}
        return _from_sources(doc, env, Path(path) if path else None)


def default_cache_dir() -> Path:
    """Per-user cache folder (``$XDG_CACHE_HOME/opencode_lab`` or ``~/.cache/opencode_lab``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "opencode_lab"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _from_sources(doc: Mapping[str, Any], env: Mapping[str, str], source: Path | None) -> Settings:
    where = str(source) if source else "config"
    lab = _table(doc, "lab", where)
    cache = _table(doc, "cache", where)

    def pick(var: str, table: Mapping[str, Any], key: str) -> tuple[str, Any] | None:
        if env.get(var, "").strip():
            return var, env[var].strip()
        if key in table:
            return f"{where}: {key}", table[key]
        return None

    def value(var: str, table: Mapping[str, Any], key: str, parse: Any, default: Any) -> Any:
        found = pick(var, table, key)
        return default if found is None else parse(found[0], found[1])

    cache_dir = value("OC_CACHE_DIR", cache, "dir", lambda _n, v: Path(os.path.expanduser(str(v))), None)
    cache_dir = cache_dir or default_cache_dir()
    runlog_raw = value("OC_RUNLOG", lab, "runlog", lambda _n, v: str(v), None)
    runlog = None if runlog_raw in ("off", "0", "false") else Path(runlog_raw or cache_dir / "runs.sqlite")

    settings = Settings(
        openrouter_api_key=_secret(env.get("OPENROUTER_API_KEY")),
        openrouter_base_url=value("OPENROUTER_BASE_URL", lab, "openrouter_base_url", _url, DEFAULT_OPENROUTER_BASE_URL),
        openrouter_model_list=value("OPENROUTER_MODEL_LIST", lab, "openrouter_model_list", _model_list, ()),
        openai_api_key=_secret(env.get("OPENAI_API_KEY")),
        openai_base_url=value("OPENAI_BASE_URL", lab, "openai_base_url", _url, DEFAULT_OPENAI_BASE_URL),
        cache_mode=value("OC_CACHE_MODE", cache, "mode", _choice(CACHE_MODES), "file"),
        cache_ttl_ms=value("OC_CACHE_TTL_MS", cache, "ttl_ms", _positive_int, None),
        cache_dir=cache_dir,
        runlog=runlog,
        log_level=value("LOG_LEVEL", lab, "log_level", _choice(LOG_LEVELS, upper=True), "WARNING"),
        agent_max_iter=value("AGENT_MAX_ITER", lab, "agent_max_iter", _positive_int, 3),
        timeout_s=value("OC_TIMEOUT_S", lab, "timeout_s", _positive_float, 60.0),
        max_concurrency=value("OC_MAX_CONCURRENCY", lab, "max_concurrency", _positive_int, 8),
        strategy=value("OC_STRATEGY", lab, "strategy", _choice(STRATEGIES), "round_robin"),
        max_retries=value("OC_MAX_RETRIES", lab, "max_retries", _non_negative_int, 2),
        deadline_s=value("OC_DEADLINE_S", lab, "deadline_s", _positive_float, 300.0),
        breaker_failures=value("OC_BREAKER_FAILURES", lab, "breaker_failures", _positive_int, 5),
        breaker_cooldown_s=value("OC_BREAKER_COOLDOWN_S", lab, "breaker_cooldown_s", _positive_float, 30.0),
        rate_window_s=value("OC_RATE_WINDOW_S", lab, "rate_window_s", _positive_float, 60.0),
        default_models=value("OC_DEFAULT_MODELS", lab, "default_models", _model_list, ()),
        providers=_providers(_table(doc, "providers", where), env, where),
        deployments=_deployments(_table(doc, "models", where), where),
        aliases=_aliases(_table(doc, "aliases", where), where),
        source=source,
    )
    return settings


def _table(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    table = doc.get(key, {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return table


def _secret(raw: str | None) -> Secret | None:
    return Secret(raw.strip()) if raw and raw.strip() else None


def _url(name: str, raw: Any) -> str:
    text = str(raw).strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", text):
        raise ConfigError(f"{name} must be an http(s) URL, got {raw!r}")
    return text


def _model_list(name: str, raw: Any) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{name} must be a comma-separated list of model ids, got {raw!r}")
    out = tuple(str(i).strip() for i in items)
    if not out or any(not i for i in out):
        raise ConfigError(f"{name} has an empty item: {raw!r} (expected e.g. 'openai/gpt-4o-mini,meta/llama-3-8b')")
    return out


def _choice(options: tuple[str, ...], *, upper: bool = False) -> Any:
    def parse(name: str, raw: Any) -> str:
        text = str(raw).strip()
        text = text.upper() if upper else text.lower()
        if text not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, got {raw!r}")
        return text

    return parse


def _number(name: str, raw: Any, cast: type, minimum: float, strict: bool) -> Any:
    try:
        number = cast(raw) if not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum or (strict and number == minimum):
        bound = f"greater than {minimum}" if strict else f"at least {minimum}"
        raise ConfigError(f"{name} must be a {cast.__name__} {bound}, got {raw!r}")
    return number


def _positive_int(name: str, raw: Any) -> int:
    return _number(name, raw, int, 1, False)


def _non_negative_int(name: str, raw: Any) -> int:
    return _number(name, raw, int, 0, False)


def _positive_float(name: str, raw: Any) -> float:
    return _number(name, raw, float, 0, True)


def _optional(table: Mapping[str, Any], key: str, parse: Any, where: str) -> Any:
    return parse(f"{where}.{key}", table[key]) if key in table else None


def _providers(table: Mapping[str, Any], env: Mapping[str, str], where: str) -> dict[str, ProviderConfig]:
    out = {}
    for name, spec in table.items():
        at = f"{where}: [providers.{name}]"
        if not isinstance(spec, Mapping) or "base_url" not in spec:
            raise ConfigError(f"{at} needs a base_url")
        if not _NAME.match(name) or name in ("local", "openrouter", "openai"):
            raise ConfigError(f"{at}: name must be a plain word other than local, openrouter, openai")
        key_env = spec.get("api_key_env")
        if key_env is not None and not isinstance(key_env, str):
            raise ConfigError(f"{at}.api_key_env must be the name of an environment variable")
        models = spec.get("models", [])
        if not isinstance(models, list) or not all(isinstance(m, str) and m.strip() for m in models):
            raise ConfigError(f"{at}.models must be a list of model ids")
        headers = spec.get("headers", {})
        if not isinstance(headers, Mapping):
            raise ConfigError(f"{at}.headers must be a table")
        out[name] = ProviderConfig(
            name=name,
            base_url=_url(f"{at}.base_url", spec["base_url"]),
            api_key=_secret(env.get(key_env)) if key_env else None,
            models=tuple(models),
            headers=tuple((str(k), str(v)) for k, v in headers.items()),
        )
    return out


def _deployments(table: Mapping[str, Any], where: str) -> tuple[DeploymentConfig, ...]:
    out: list[DeploymentConfig] = []
    for model, spec in table.items():
        at = f"{where}: [models.{model}]"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{at} must be a table")
        if "deployments" not in spec:
            out.append(_deployment(model, spec, at))
            continue
        entries = spec["deployments"]
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{at}.deployments must be a non-empty array of tables")
        out.extend(_deployment(model, entry, f"{at}.deployments[{i}]") for i, entry in enumerate(entries))
    return tuple(out)


def _deployment(model: str, entry: Mapping[str, Any], at: str) -> DeploymentConfig:
    if not isinstance(entry, Mapping) or "provider" not in entry:
        raise ConfigError(f'{at} needs a provider (e.g. provider = "openrouter")')
    provider = str(entry["provider"])
    path = entry.get("path")
    if provider == "local" and not path:
        raise ConfigError(f'{at}: a local model needs path = "/path/to/model.gguf"')
    tags = entry.get("tags", [])
    if not isinstance(tags, list):
        raise ConfigError(f"{at}.tags must be a list of strings")
    return DeploymentConfig(
        model=model,
        provider=provider,
        upstream=str(entry.get("upstream", model)),
        weight=_optional(entry, "weight", _positive_float, at) or 1.0,
        rpm=_optional(entry, "rpm", _positive_float, at),
        tpm=_optional(entry, "tpm", _positive_float, at),
        max_in_flight=_optional(entry, "max_in_flight", _positive_int, at),
        input_price_per_mtok=_optional(entry, "input_price", lambda n, v: _number(n, v, float, 0, False), at),
        output_price_per_mtok=_optional(entry, "output_price", lambda n, v: _number(n, v, float, 0, False), at),
        context_length=_optional(entry, "context_length", _positive_int, at),
        tags=tuple(str(t) for t in tags),
        path=str(path) if path else None,
    )


def _aliases(table: Mapping[str, Any], where: str) -> dict[str, tuple[str, ...]]:
    aliases: dict[str, tuple[str, ...]] = {}
    for name, target in table.items():
        items = [target] if isinstance(target, str) else target
        if not isinstance(items, list) or not items or not all(isinstance(t, str) and t.strip() for t in items):
            raise ConfigError(f"{where}: [aliases] {name} must be a model id or a non-empty list of ids")
        aliases[name] = tuple(t.strip() for t in items)
    _reject_cycles(aliases, where)
    return aliases


def _reject_cycles(aliases: Mapping[str, tuple[str, ...]], where: str) -> None:
    """Fallback chains must be finite: an alias may not reach itself through other aliases."""

    def visit(name: str, path: tuple[str, ...]) -> None:
        for target in aliases.get(name, ()):
            if target in path:
                chain = " -> ".join((*path, target))
                raise ConfigError(f"{where}: [aliases] form a cycle: {chain}")
            visit(target, (*path, target))

    for name in aliases:
        visit(name, (name,))
