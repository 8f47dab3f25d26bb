"""opencode_lab: prompt experiments and side-by-side LLM comparison in notebooks.

Public API (everything else is private by convention)::

    import opencode_lab as oc
    oc.chat("Name three primes.", model="local/smollm2-135m", temperature=0, seed=1)
    df = oc.compare(["2+2?", "Capital of France?"], ["local/smollm2-135m", "local/gemma-3-270m"])
    oc.stats(df); oc.paired(df, "latency_s"); oc.plot(df)

The module-level functions use a default `Lab` built from the environment on
first use; ``Lab.from_file(path)`` gives a separately configured one.
Heavy dependencies (pandas, matplotlib, IPython, llama_cpp) load on first use.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .analysis.agreement import Agreement, agreement
from .analysis.planning import sample_size
from .analysis.statistics import paired
from .core.attempt import Attempt
from .core.config import ProviderConfig, Settings
from .core.deployment import Deployment
from .core.errors import (
    AllAttemptsFailedError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigError,
    ContextWindowError,
    InvalidRequestError,
    LabError,
    MalformedResponseError,
    ModelNotFoundError,
    ModelUnavailableError,
    PaymentRequiredError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    ResidencyError,
    RunInterruptedError,
    RunMismatchError,
    SchemaMismatchError,
    ServerError,
    StreamInterruptedError,
)
from .core.logprobs import TokenLogprob
from .core.params import Params
from .core.types import ChatRequest, ChatResult, Completion, Message, ModelInfo, StreamChunk, Usage
from .evals import scorers
from .evals.judge import DEFAULT_RUBRIC, Judge
from .evals.judge import judge as _judge
from .evals.pairwise import pairwise as _pairwise
from .evals.ratings import position_bias, ratings, win_rates
from .frontends import figures as _figures
from .frontends.accessor import register, register_if_loaded
from .frontends.progress import progress as _progress
from .lab.default import DefaultAsker, default_lab, set_default_lab
from .lab.lab import Lab
from .lab.presentation import present
from .providers.base import Capabilities, Provider
from .providers.registry import register_provider_type
from .routing.strategies import register_strategy
from .session.cache import CachePolicy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping, Sequence

    import pandas as pd
    from matplotlib.figure import Figure

    from .analysis.diff import Diff
    from .evals.cascade import Cascade, Check
    from .evals.features import FeatureStep
    from .evals.scorers import Scorer
    from .evals.selector import Selector
    from .lab.history import Since
    from .session.session import Prompt

__version__ = "0.1.0"

__all__ = [
    "Agreement",
    "AllAttemptsFailedError",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CachePolicy",
    "Capabilities",
    "ChatRequest",
    "ChatResult",
    "CircuitOpenError",
    "Completion",
    "ConfigError",
    "ContextWindowError",
    "Deployment",
    "InvalidRequestError",
    "Lab",
    "LabError",
    "MalformedResponseError",
    "Message",
    "ModelInfo",
    "ModelNotFoundError",
    "ModelUnavailableError",
    "Params",
    "PaymentRequiredError",
    "Provider",
    "ProviderConfig",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeout",
    "RateLimitError",
    "ResidencyError",
    "RunInterruptedError",
    "RunMismatchError",
    "SchemaMismatchError",
    "ServerError",
    "Settings",
    "StreamChunk",
    "StreamInterruptedError",
    "TokenLogprob",
    "Usage",
    "__version__",
    "achat",
    "acompare",
    "agreement",
    "astream",
    "budget",
    "cascade",
    "chat",
    "compare",
    "dashboard",
    "default_lab",
    "diff",
    "grade",
    "history",
    "incidents",
    "judge",
    "label",
    "labels",
    "learn_selector",
    "load_ipython_extension",
    "load_run",
    "load_selector",
    "models",
    "paired",
    "pairwise",
    "plot",
    "plot_traffic",
    "position_bias",
    "ratings",
    "register_provider_type",
    "register_strategy",
    "runs",
    "sample_size",
    "scorers",
    "set_default_lab",
    "sla",
    "sla_report",
    "spend",
    "stats",
    "stream",
    "unload_ipython_extension",
    "uptime",
    "win_rates",
]

def chat(prompt: Prompt, model: str | Sequence[str] | None = None, **kwargs: Any) -> ChatResult:
    """Ask one prompt (or a message list); see `Lab.achat` for the options."""
    __tracebackhide__ = True
    return default_lab().chat(prompt, model, **kwargs)


async def achat(prompt: Prompt, model: str | Sequence[str] | None = None, **kwargs: Any) -> ChatResult:
    return await default_lab().achat(prompt, model, **kwargs)


def stream(prompt: Prompt, model: str | Sequence[str] | None = None, **kwargs: Any) -> Iterator[str]:
    """Yield the answer's text as it arrives."""
    return default_lab().stream(prompt, model, **kwargs)


def astream(prompt: Prompt, model: str | Sequence[str] | None = None, **kwargs: Any) -> AsyncIterator[str]:
    return default_lab().astream(prompt, model, **kwargs)


def compare(prompts: object, models: str | Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
    """Every prompt x model x sample as a row; see `opencode_lab.lab.compare.acompare`."""
    __tracebackhide__ = True
    return default_lab().compare(prompts, models, **kwargs)


async def acompare(prompts: object, models: str | Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
    return await default_lab().acompare(prompts, models, **kwargs)


def stats(
    results: pd.DataFrame | None = None,
    by: str | list[str] = "model",
    *,
    cluster: str | None = None,
    failures: str = "count",
) -> pd.DataFrame:
    """Per-model scores, failures, latency, tokens and cost with 95 % intervals; see `Lab.stats`."""
    __tracebackhide__ = True
    return default_lab().stats(results, by=by, cluster=cluster, failures=failures)


def grade(
    results: pd.DataFrame, scorer: Scorer | Mapping[str, Scorer] | None, *, lab: Lab | None = None
) -> pd.DataFrame:
    """Score an existing results frame after the fact (what ``compare(..., scorer=...)`` does, without asking
    the models again); judges ask through *lab* (default: the default Lab)."""
    from .evals.grading import agrade

    lab = lab if lab is not None else default_lab()
    return lab.block_on(agrade(lab, results, scorer))


def judge(
    model: str,
    rubric: str = DEFAULT_RUBRIC,
    scale: tuple[int, int] | int = (1, 5),
    *,
    reference: str | None = "expected",
    seed: int = 0,
    max_tokens: int = 96,
    structured: bool = True,
    lab: Lab | None = None,
) -> Judge:
    """A scorer that asks *model* to grade each answer; see `opencode_lab.evals.judge.judge`.  Called row by
    row it asks through *lab* (default: the default Lab); in ``compare`` through the compare's Lab."""
    asker = lab if lab is not None else DefaultAsker()
    return _judge(
        model, rubric, scale, reference=reference, seed=seed, max_tokens=max_tokens, structured=structured, lab=asker
    )


def pairwise(results: pd.DataFrame, judge: Judge | str, **kwargs: Any) -> pd.DataFrame:
    """Every pair of models on every prompt, judged in both orders; see `opencode_lab.evals.pairwise.pairwise`.
    The judge asks through ``lab=``, else the judge's Lab, else the default Lab."""
    __tracebackhide__ = True
    if kwargs.get("lab") is None and not (isinstance(judge, Judge) and judge.lab is not None):
        kwargs["lab"] = DefaultAsker()
    return _pairwise(results, judge, **kwargs)


def learn_selector(
    results: pd.DataFrame,
    quality: str = "score",
    cost: str = "cost_usd",
    *,
    features: FeatureStep | Sequence[str] | None = None,
    estimator: str = "knn",
    k: int = 10,
    name: str = "selector",
) -> Selector:
    """Learn from *results* (compare frames) which model to ask for a prompt; ``chat``/``compare`` take the
    selector as ``model=``, ``selector.evaluate()`` proves it first.  Needs ``pip install 'opencode-lab[learn]'``;
    see `opencode_lab.evals.selector.learn_selector`."""
    from .evals.selector import learn_selector as learn

    return learn(results, quality, cost, features=features, estimator=estimator, k=k, name=name)


def load_selector(path: str, *, models: Sequence[str] | None = None, name: str | None = None) -> Selector:
    """A selector saved with ``selector.save(path)`` (JSON, refitted on load; nothing in the file is run);
    with *models*, refused unless it was trained on exactly those models."""
    from .evals.selector import Selector

    return Selector.load(path, models=models, name=name)


def cascade(
    models: Sequence[str], accept: Check | Mapping[str, Any] | str, *, threshold: float = 1.0, name: str | None = None
) -> Cascade:
    """Ask *models* in order (cheapest first) until an answer passes *accept*: a scorer or judge (at least
    *threshold*), a callable on the results row, a JSON schema or a column name; use it as ``model=``."""
    from .evals.cascade import cascade as make

    return make(models, accept, threshold=threshold, name=name)


def models(filter: str | None = None, *, tag: str | None = None, refresh: bool = False) -> pd.DataFrame:
    """The model catalog with each deployment's cloud, region, pricing, context length, tags and health."""
    __tracebackhide__ = True
    return default_lab().models(filter, tag=tag, refresh=refresh)


def plot(data: pd.DataFrame | None = None, kind: str = "overview", **kwargs: Any) -> Figure:
    """A comparison figure (``latency``, ``cost``, ``failures``, ``tradeoff`` or ``overview``)."""
    __tracebackhide__ = True
    return default_lab().plot(data, kind, **kwargs)


def plot_traffic(attempts: pd.DataFrame | None = None, **kwargs: Any) -> Figure:
    """Attempts over time per deployment (default: this session's attempts): where the router sent traffic."""
    from .analysis.plots import plot_traffic as draw
    from .frontends.figures import shown

    return shown(draw(attempts if attempts is not None else default_lab().attempts(), **kwargs))


def runs() -> pd.DataFrame:
    """Runs kept in the SQLite run log."""
    __tracebackhide__ = True
    return default_lab().runs()


def history(since: Since = None, *, model: str | None = None) -> pd.DataFrame:
    """Every call the run log holds (chat, stream, ``%%chat``, compare), oldest first; see `Lab.history`."""
    __tracebackhide__ = True
    return default_lab().history(since, model=model)


def uptime(window: Since = "24h", *, by: str = "served_by") -> pd.DataFrame:
    """Per-deployment availability, error mix and latency percentiles over *window*; see `Lab.uptime`."""
    __tracebackhide__ = True
    return default_lab().uptime(window, by=by)


def sla(since: Since = "30d", *, now: float | None = None) -> pd.DataFrame:
    """Per deployment: availability and latency p95 with intervals against the ``[slo]`` objectives, error
    budget remaining, multiwindow burn rates and incidents; see `Lab.sla`."""
    __tracebackhide__ = True
    return default_lab().sla(since, now=now)


def incidents(since: Since = "30d", *, now: float | None = None) -> pd.DataFrame:
    """Outages in the run log: runs of consecutive failed attempts per deployment; see `Lab.incidents`."""
    __tracebackhide__ = True
    return default_lab().incidents(since, now=now)


def sla_report(path: str | None = None, since: Since = "30d", *, now: float | None = None) -> str:
    """The SLA report as one self-contained HTML page (figures embedded), written to *path* when given."""
    from .frontends.sla_report import sla_report as report

    lab = default_lab()
    return report(lab.require_runlog(), lab.settings.slo, path, since, now=now)


def spend(since: Since = None, *, by: str = "day") -> pd.DataFrame:
    """Paid and saved (cache) USD per day, model, run or column; see `Lab.spend`."""
    __tracebackhide__ = True
    return default_lab().spend(since, by=by)


def budget() -> pd.DataFrame:
    """Each ``[budget]`` period's limit, spending (every process sharing the run log) and state."""
    __tracebackhide__ = True
    return default_lab().budget()


def dashboard(**options: Any) -> Any:
    """The analytics dashboard (Panel, extra ``ui``) to show in a notebook cell; it refreshes as calls land."""
    from .frontends.dashboard import dashboard as view

    return view(default_lab(), **options)


def load_run(run: str) -> pd.DataFrame:
    """The results frame of a logged run, by name or id."""
    __tracebackhide__ = True
    return default_lab().load_run(run)


def diff(
    baseline: str | pd.DataFrame,
    new: str | pd.DataFrame,
    metric: str = "score",
    *,
    scorer: Scorer | Mapping[str, Scorer] | None = None,
    **kwargs: Any,
) -> Diff:
    """Which prompts got worse or better from run *baseline* to run *new* (names, ids or frames), with the paired
    test across runs; ``.regressed`` says whether the new run is detectably worse.  See `Lab.diff`."""
    __tracebackhide__ = True
    return default_lab().diff(baseline, new, metric, scorer=scorer, **kwargs)


def label(run: str, prompt_id: Any, model: str, verdict: str | float, **kwargs: Any) -> None:
    """Record a person's verdict on a row of *run* (``correct``/``wrong``/``partial``/a score), or with
    ``over=`` a preference between two models' answers; see `Lab.label`."""
    __tracebackhide__ = True
    default_lab().label(run, prompt_id, model, verdict, **kwargs)


def labels(run: str | None = None, *, battles: bool = False) -> pd.DataFrame:
    """The human labels in the run log (who, when, what); ``battles=True`` for `ratings`; see `Lab.labels`."""
    __tracebackhide__ = True
    return default_lab().labels(run, battles=battles)


def _register_rich_reprs() -> None:
    """Show a `ChatResult` as escaped Markdown in a running IPython, without core importing display code."""
    ipython_module = sys.modules.get("IPython")
    shell = ipython_module.get_ipython() if ipython_module is not None else None
    if shell is not None:
        from .frontends.display import register_reprs

        register_reprs(shell)


_register_rich_reprs()
present(progress=_progress, figure=_figures.shown, frames=register)
register_if_loaded()  # ``df.oc`` at once when pandas is already imported; else when we first hand out a frame


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext opencode_lab``: register ``%%chat``, ``%models`` and friends."""
    from .frontends.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .frontends.magics import unload_ipython_extension as unload

    unload(ipython)
