"""The public surface is `opencode_lab.__all__`; changing it is a visible decision."""

from __future__ import annotations

import opencode_lab

PUBLIC = {
    "AllAttemptsFailedError",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CachePolicy",
    "Capabilities",
    "Deployment",
    "Params",
    "ProviderConfig",
    "RunInterruptedError",
    "RunMismatchError",
    "SchemaMismatchError",
    "plot_traffic",
    "register_provider_type",
    "register_strategy",
    "ChatRequest",
    "Completion",
    "ModelInfo",
    "Provider",
    "StreamChunk",
    "ChatResult",
    "CircuitOpenError",
    "ConfigError",
    "ContextWindowError",
    "InvalidRequestError",
    "Lab",
    "LabError",
    "MalformedResponseError",
    "Message",
    "ModelNotFoundError",
    "ModelUnavailableError",
    "PaymentRequiredError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeout",
    "RateLimitError",
    "ServerError",
    "Settings",
    "StreamInterruptedError",
    "Usage",
    "__version__",
    "acompare",
    "achat",
    "astream",
    "chat",
    "compare",
    "default_lab",
    "load_ipython_extension",
    "load_run",
    "models",
    "paired",
    "plot",
    "runs",
    "sample_size",
    "scorers",
    "grade",
    "history",
    "uptime",
    "judge",
    "learn_selector",
    "load_selector",
    "cascade",
    "pairwise",
    "position_bias",
    "ratings",
    "win_rates",
    "set_default_lab",
    "stats",
    "stream",
    "unload_ipython_extension",
}


def test_all_lists_exactly_the_public_names() -> None:
    assert set(opencode_lab.__all__) == PUBLIC


def test_every_public_name_exists() -> None:
    missing = [name for name in opencode_lab.__all__ if not hasattr(opencode_lab, name)]
    assert missing == []
