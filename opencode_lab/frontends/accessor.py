"""``df.oc``: the toolkit reached from a results frame, the pandas-native way (``register_dataframe_accessor``).

::

    df = oc.compare(prompts, models, scorer=...)
    df.oc.wide()            # prompt rows x model columns, answers readable, scores and errors marked
    df.oc.view()            # interactive triage: filters, search, sort, a call's transcript, human labels
    df.oc.summary()         # one compact row per model: score, failures, latency, cost
    df.oc.stats()           # every statistic with its interval (numbers, for further work)
    df.oc.table("all")      # any toolkit frame as shown, every column (a stats frame shows compactly)
    df.oc.plot("score")     # a figure, shown like df.plot()
    df.oc.paired("score")   # model-vs-model differences on the same prompts
    df.oc.errors()          # the failed rows, cause first

Registered when opencode_lab first hands out a frame (or at import when pandas is
already loaded): ``import opencode_lab`` itself never imports pandas.  The methods
work on any frame with the columns they need, e.g. one read back from a CSV.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .diagnosis import short_error
from .tables import readable
from .wide import REQUIRED

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ..analysis.planning import SampleSize
    from ..lab.lab import Lab
    from .tables import Table
    from .view import View
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
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        from .tables import register_formatters

        register_formatters(shell)


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

    def table(self, columns: str | list[str] | None = None, *, max_rows: int | None = None) -> Table:
        """The frame as the toolkit shows it (`opencode_lab.frontends.tables`): ``columns="all"`` for every column
        (a stats frame shows a compact view by default), or a list of columns; the frame itself is unchanged."""
        from .tables import table

        return table(self._frame, columns, max_rows=max_rows)

    def wide(self, *, max_chars: int | None = 400) -> Wide:
        """Prompt rows x model columns of the answers, scores and errors marked; ``max_chars=None`` unfolds all."""
        from .wide import wide

        return wide(self._frame, max_chars=max_chars)

    def view(self, *, lab: Lab | None = None, who: str | None = None) -> View:
        """An interactive view for triage (Panel, the ``ui`` extra): filter to failures, disagreements, cut answers
        or a score range, search, sort by a scorer, click a row for its whole call and label it in the run log
        (through *lab*, default: the default Lab; as *who*, default: the login name)."""
        from .view import View

        return View(self._frame, lab=lab, who=who)

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
