"""``df.oc``: the toolkit reached from a results frame, the pandas-native way (``register_dataframe_accessor``).

::

    df = oc.compare(prompts, models, scorer=...)
    df.oc.wide()            # prompt rows x model columns, answers readable, scores and errors marked
    df.oc.summary()         # one compact row per model: score, failures, latency, cost
    df.oc.stats()           # every statistic with its interval (numbers, for further work)
    df.oc.plot("score")     # a figure, shown like df.plot()
    df.oc.paired("score")   # model-vs-model differences on the same prompts
    df.oc.errors()          # the failed rows, cause first

Registered when opencode_lab first hands out a frame (or at import when pandas is
already loaded): ``import opencode_lab`` itself never imports pandas.  The methods
work on any frame with the columns they need, e.g. one read back from a CSV.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

from .diagnosis import short_error
from .wide import REQUIRED

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ..analysis.planning import SampleSize
    from .wide import Wide

_registered = False


def register() -> None:
    """Make ``DataFrame.oc`` available (idempotent; imports pandas)."""
    global _registered
    if _registered:
        return
    from pandas.api.extensions import register_dataframe_accessor

    register_dataframe_accessor("oc")(OcAccessor)
    _registered = True


def register_if_loaded() -> None:
    """Register at once when pandas is already imported (a notebook's usual ``import pandas`` first)."""
    if "pandas" in sys.modules:
        register()


class OcAccessor:
    """``df.oc``: see the module doc."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def stats(
        self, by: str | list[str] = "model", *, cluster: str | None = None, failures: str = "count"
    ) -> pd.DataFrame:
        """Per-model scores, failures, latency, tokens and cost with 95 % intervals (`opencode_lab.stats`); a
        failed call scores 0 unless ``failures="drop"``."""
        from ..analysis.metrics import summarize

        return summarize(self._frame, by=by, cluster=cluster, failures=failures)

    def summary(
        self, by: str | list[str] = "model", *, cluster: str | None = None, failures: str = "count"
    ) -> pd.DataFrame:
        """`stats` to read: one short, formatted column per question (score, failures, latency, speed, cost) and
        the notes a reader must see (failures counted as 0, prompts lost, intervals there is too little data for)."""
        return readable(self.stats(by, cluster=cluster, failures=failures))

    def wide(self, *, max_chars: int | None = 400) -> Wide:
        """Prompt rows x model columns of the answers, scores and errors marked; ``max_chars=None`` unfolds all."""
        from .wide import wide

        return wide(self._frame, max_chars=max_chars)

    def plot(self, kind: str = "overview", **kwargs: Any) -> Figure:
        """A comparison figure of the frame (`opencode_lab.plot`), shown in Jupyter like ``df.plot()``."""
        from ..analysis.plots import plot
        from .figures import shown

        return shown(plot(self._frame, kind, **kwargs))

    def paired(self, metric: str = "score", **kwargs: Any) -> pd.DataFrame:
        """Every pair of models compared on the same prompts, with a verdict that names the better one
        (`opencode_lab.paired`)."""
        from ..analysis.statistics import paired

        return paired(self._frame, metric, **kwargs)

    def sample_size(self, effect: float, **kwargs: Any) -> SampleSize:
        """Prompts needed to detect a gap of *effect*, with this frame as the pilot (`opencode_lab.sample_size`);
        ``.n`` is the number, the rest what it assumes."""
        from ..analysis.planning import sample_size

        return sample_size(effect, pilot=self._frame, **kwargs)

    def errors(self) -> pd.DataFrame:
        """The failed rows: prompt, model, error type and the cause first (the router's preamble dropped)."""
        frame = self._frame
        missing = [c for c in (*REQUIRED, "error") if c not in frame.columns]
        if missing:
            raise ValueError(f"errors() needs a results frame; missing column(s): {', '.join(missing)}")
        failed = frame[frame["error_type"].notna()]
        out = failed[["prompt", "model", "error_type"]].copy()
        out["cause"] = [short_error(e) if isinstance(e, str) else "" for e in failed["error"]]
        return out

    def ratings(self, **kwargs: Any) -> pd.DataFrame:
        """Bradley–Terry ratings of a battles frame (`opencode_lab.ratings`)."""
        from ..evals.ratings import ratings

        return ratings(self._frame, **kwargs)

    def win_rates(self) -> pd.DataFrame:
        """Head-to-head win rates of a battles frame (`opencode_lab.win_rates`)."""
        from ..evals.ratings import win_rates

        return win_rates(self._frame)


def readable(stats: pd.DataFrame) -> pd.DataFrame:
    """A stats frame as short strings: ``0.83 [0.44, 0.97]``, ``1/6 (17 %)``, ``0.31 s``, ``$0.0012``, ``free``."""
    import pandas as pd

    from ..analysis.metrics import STATS_COLUMNS

    out = pd.DataFrame(index=stats.index)
    for name in [c.removesuffix("_mean") for c in stats.columns if c.endswith("_mean") and c not in STATS_COLUMNS]:
        out[name] = [
            _interval(m, lo, hi, "{:.2f}")
            for m, lo, hi in zip(stats[f"{name}_mean"], stats[f"{name}_ci_low"], stats[f"{name}_ci_high"], strict=True)
        ]
    out["failed"] = [
        f"{f}/{c} ({r:.0%})" if c else "–" for f, c, r in zip(stats["failed"], stats["calls"], stats["failure_rate"],
                                                               strict=True)
    ]  # fmt: skip
    out["latency p50"] = [
        _interval(m, lo, hi, "{:.2f} s")
        for m, lo, hi in zip(stats["latency_p50_s"], stats["latency_p50_s_ci_low"], stats["latency_p50_s_ci_high"],
                             strict=True)
    ]  # fmt: skip
    out["latency p95"] = [
        _interval(m, lo, hi, "{:.2f} s")
        for m, lo, hi in zip(stats["latency_p95_s"], stats["latency_p95_s_ci_low"], stats["latency_p95_s_ci_high"],
                             strict=True)
    ]  # fmt: skip
    out["tokens/s"] = [_number(v, "{:.0f}") for v in stats["output_tokens_per_s"]]
    out["cost"] = [_cost(c, s) for c, s in zip(stats["cost_usd"], stats["cost_saved_usd"], strict=True)]
    out["top error"] = [e if isinstance(e, str) else "" for e in stats["top_error"]]
    out["note"] = [n if isinstance(n, str) else "" for n in stats["note"]] if "note" in stats.columns else ""
    return out


def _interval(mean: float, low: float, high: float, fmt: str) -> str:
    if not _known(mean):
        return "–"
    if not (_known(low) and _known(high)):
        return fmt.format(mean)
    return f"{fmt.format(mean)} [{fmt.format(low).removesuffix(' s')}, {fmt.format(high)}]"


def _number(value: float, fmt: str) -> str:
    return fmt.format(value) if _known(value) else "–"


def _cost(spent: float, saved: float) -> str:
    """What was paid and what cache hits saved: a warm rerun of a run whose cost was unknown saved an unknown
    amount, never nothing (``free`` is for answers that cost nothing, e.g. local models)."""
    if not _known(spent):
        return "unknown"
    if not _known(saved) or saved > 0:
        amount = f"${saved:.4f}" if _known(saved) else "unknown"
        return f"${spent:.4f} (cache saved {amount})"
    return "free" if spent == 0 else f"${spent:.4f}" if spent < 1 else f"${spent:,.2f}"


def _known(value: Any) -> bool:
    try:
        return value is not None and not math.isnan(float(value))
    except (TypeError, ValueError):
        return False
