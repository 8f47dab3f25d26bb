"""`Lab`: the session plus its DataFrame API (compare, stats, models, health, plots, runs).

The session (`opencode_lab.session.Session`) does one call at a time; `Lab`
adds what a researcher does with many, built on the session's public methods
only.  pandas and matplotlib are imported when a frame or figure is first made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core.errors import LabError
from ..core.schema import attempts_frame, results_frame
from ..core.secrets import get_logger
from ..session.session import Session
from . import compare as _compare
from . import tables

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ..session.runlog import RunLog

log = get_logger(__name__)


class Lab(Session):
    """A configured session with the DataFrame API: ``Lab.from_env()``, ``Lab.from_file(path)``, ``Lab(settings)``."""

    def compare(self, prompts: Any, models: str | Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
        """Every prompt x model x sample as one row of a DataFrame; see `acompare` for the keywords."""
        return _compare.compare(self, prompts, models, **kwargs)

    async def acompare(self, prompts: Any, models: str | Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
        return await _compare.acompare(self, prompts, models, **kwargs)

    acompare.__doc__ = _compare.acompare.__doc__

    def stats(self, results: pd.DataFrame | None = None, by: str | Sequence[str] = "model") -> pd.DataFrame:
        """Per-model latency, cost and failure summary of *results* (default: every call of this session)."""
        from ..analysis.metrics import summarize

        self.flush()
        frame = results if results is not None else results_frame(self.calls)
        return summarize(frame, by=by if isinstance(by, str) else list(by))

    def models(self, filter: str | None = None, *, tag: str | None = None, refresh: bool = False) -> pd.DataFrame:
        """The catalog as a DataFrame, with each deployment's health state."""
        if refresh or self.catalog_pending():
            try:
                self.refresh_catalog(refresh=refresh)
            except LabError as exc:
                log.warning("could not load the OpenRouter catalog: %s", exc)
        return tables.models_frame(self, filter, tag)

    def health(self) -> pd.DataFrame:
        """State of every deployment: circuit, success rate, p50 latency, last error, pause."""
        return tables.health_frame(self)

    def health_check(self) -> pd.DataFrame:
        """Actively probe every provider's ``/models`` and report which answered."""
        return self.run(tables.health_check(self))

    def plot(self, data: pd.DataFrame | None = None, kind: str = "overview", **kwargs: Any) -> Figure:
        """A comparison figure of *data* (a results or stats frame; default: this session's stats)."""
        from ..analysis.plots import plot

        return plot(data if data is not None else self.stats(), kind, **kwargs)

    def attempts(self) -> pd.DataFrame:
        """Every attempt of this session (one row per try, failed or not)."""
        self.flush()
        return attempts_frame(self.records)

    def runs(self) -> pd.DataFrame:
        """Runs kept in the SQLite run log."""
        return self._require_runlog().runs()

    def load_run(self, run: str) -> pd.DataFrame:
        """The results frame of a logged run, by name or id."""
        return self._require_runlog().load_run(run)

    def _require_runlog(self) -> RunLog:
        self.flush()
        runlog = self.runlog
        if runlog is None:
            raise LabError("the run log is off (OC_RUNLOG=off); set OC_RUNLOG to a path to keep runs")
        return runlog
