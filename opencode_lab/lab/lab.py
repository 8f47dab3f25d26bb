"""`Lab`: the session plus its DataFrame API (compare, stats, models, health, plots, runs).

The session (`opencode_lab.session.Session`) does one call at a time; `Lab`
adds what a researcher does with many, built on the session's public methods
only.  pandas and matplotlib are imported when a frame or figure is first made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError, InvalidRequestError, LabError
from ..core.schema import attempts_frame, results_frame
from ..core.secrets import get_logger
from ..core.types import ChatResult
from ..session.session import Session
from . import compare as _compare
from . import history as _history
from . import status
from .presentation import shown

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ..analysis.diff import Diff
    from ..evals.cascade import Cascade
    from ..evals.scorers import Scorer
    from ..evals.selector import Selector
    from ..session.runlog import RunLog
    from ..session.session import Prompt
    from .history import Since

    Chooser = Selector | Cascade

log = get_logger(__name__)


class Lab(Session):
    """A configured session with the DataFrame API: ``Lab.from_env()``, ``Lab.from_file(path)``, ``Lab(settings)``."""

    def compare(
        self, prompts: object, models: str | Sequence[str] | Chooser | None = None, **kwargs: Any
    ) -> pd.DataFrame:
        """Every prompt x model x sample as one row of a DataFrame; see `acompare` for the keywords.  *models*
        may be a learned selector or a cascade (see `opencode_lab.lab.selecting`)."""
        __tracebackhide__ = True
        shown.frames()
        chooser = self._chooser(models)
        if chooser is not None:
            from . import selecting

            return self.block_on(selecting.acompare(self, prompts, chooser, kwargs))
        return _compare.compare(self, prompts, models, **kwargs)  # type: ignore[arg-type]

    async def acompare(
        self, prompts: object, models: str | Sequence[str] | Chooser | None = None, **kwargs: Any
    ) -> pd.DataFrame:
        shown.frames()
        chooser = self._chooser(models)
        if chooser is not None:
            from . import selecting

            return await self.hop(selecting.acompare(self, prompts, chooser, kwargs))
        return await _compare.acompare(self, prompts, models, **kwargs)  # type: ignore[arg-type]

    acompare.__doc__ = _compare.acompare.__doc__

    async def achat(
        self, prompt: Prompt, model: str | Sequence[str] | Chooser | None = None, **options: Any
    ) -> ChatResult:
        """`Session.achat`; *model* may also be a learned selector (the chosen model answers) or a cascade
        (the first answer that passes its check)."""
        chooser = self._chooser(model)
        if chooser is None:
            return await super().achat(prompt, model, **options)  # type: ignore[arg-type]
        from . import selecting

        return await self.hop(selecting.achat(self, prompt, chooser, options))

    def chat(self, prompt: Prompt, model: str | Sequence[str] | Chooser | None = None, **options: Any) -> ChatResult:
        __tracebackhide__ = True
        chooser = self._chooser(model)
        if chooser is None:
            return super().chat(prompt, model, **options)  # type: ignore[arg-type]
        from . import selecting

        return self.block_on(selecting.achat(self, prompt, chooser, options))

    chat.__doc__ = achat.__doc__

    def _chooser(self, model: object) -> Chooser | None:
        """*model* as a selector or cascade when it is one, or names a TOML ``[selectors.NAME]`` (loaded once; also
        as a one-item list, as the CLI's ``-m`` and ``%%chat -m`` pass it); plain model specs are told apart
        without importing scikit-learn."""
        if isinstance(model, Sequence) and not isinstance(model, str) and len(model) == 1:
            model = model[0]
        if isinstance(model, str) and model in self.settings.selectors:
            from . import selecting

            loaded = self.__dict__.setdefault("_selectors", {})
            if model not in loaded:
                loaded[model] = selecting.load(model, self.settings.selectors[model])
            return loaded[model]
        if model is None or isinstance(model, str | Sequence):
            return None
        from . import selecting

        return model if selecting.is_chooser(model) else None  # type: ignore[return-value]

    def stats(
        self,
        results: pd.DataFrame | None = None,
        by: str | Sequence[str] = "model",
        *,
        cluster: str | None = None,
        failures: str = "count",
    ) -> pd.DataFrame:
        """Per-model scores, failures, latency, tokens and cost of *results* (default: every call of this
        session), with 95 % intervals; a failed call scores 0 unless ``failures="drop"``.  See
        `opencode_lab.analysis.metrics.summarize` for every column."""
        from ..analysis.metrics import summarize

        shown.frames()
        frame = results if results is not None else self.results()
        return summarize(frame, by=by if isinstance(by, str) else list(by), cluster=cluster, failures=failures)

    def models(self, filter: str | None = None, *, tag: str | None = None, refresh: bool = False) -> pd.DataFrame:
        """The catalog as a DataFrame, with each deployment's health state."""
        if refresh or self.catalog_pending():
            try:
                self.refresh_catalog(refresh=refresh)
            except LabError as exc:
                log.warning("could not load the OpenRouter catalog: %s", exc)
        return status.models_frame(self, filter, tag)

    def health(self) -> pd.DataFrame:
        """State of every deployment: circuit, success rate, p50 latency, last error, pause."""
        return status.health_frame(self)

    def health_check(self, *, chat: bool = False, models: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Actively probe every provider's ``/models`` and report which answered.

        ``chat=True`` sends a one-token chat to every deployment instead (one paid call each; *models*
        limits it to the deployments a spec reaches): the only check that sees a model failing its chats.
        Rows then show the probe's outcome, the circuit state, the last real error and ``open_for_s``, the
        time until an open circuit lets a request through; a successful probe closes an open circuit.
        """
        return self.block_on(status.health_check(self, chat=chat, models=models))

    def plot(self, data: pd.DataFrame | None = None, kind: str = "overview", **kwargs: Any) -> Figure:
        """A comparison figure of *data* (a results or stats frame; default: every call of this session),
        shown in Jupyter whether or not the cell ends with it, as pandas' ``df.plot()`` is."""
        from ..analysis.plots import plot

        return shown.figure(plot(data if data is not None else self.results(), kind, **kwargs))

    def results(self) -> pd.DataFrame:
        """Every call of this session as a results frame (chat, stream, ``%%chat`` and compare calls)."""
        shown.frames()
        self.flush()
        return results_frame(self.calls)

    def attempts(self) -> pd.DataFrame:
        """Every attempt of this session (one row per try, failed or not)."""
        shown.frames()
        self.flush()
        return attempts_frame(self.records)

    def history(self, since: Since = None, *, model: str | None = None) -> pd.DataFrame:
        """Every call the run log holds, of this session and earlier ones, oldest first: prompt, parameters,
        answer, measurements and who served.  *since*: ``"24h"``, ``"7d"``, a datetime or a timedelta."""
        shown.frames()
        return _history.history(self.require_runlog(), since, model=model)

    def uptime(self, window: Since = "24h", *, by: str = "served_by") -> pd.DataFrame:
        """Per deployment over the last *window* of the run log: availability with its interval, error mix
        and latency percentiles (see `opencode_lab.lab.history.uptime`)."""
        shown.frames()
        return _history.uptime(self.require_runlog(), window, by=by)

    def sla(self, since: Since = "30d", *, now: float | None = None) -> pd.DataFrame:
        """Per deployment since *since*: availability and latency p95 with intervals against the ``[slo]``
        objectives, error budget remaining, multiwindow burn rates and incidents (`opencode_lab.lab.sla.sla`)."""
        from .sla import sla

        shown.frames()
        return sla(self.require_runlog(), self.settings.slo, since, now=now)

    def incidents(self, since: Since = "30d", *, now: float | None = None) -> pd.DataFrame:
        """Outages in the run log: runs of consecutive failed attempts per deployment, until the next success."""
        from .sla import incidents

        shown.frames()
        return incidents(self.require_runlog(), since, now=now)

    def spend(self, since: Since = None, *, by: str = "day") -> pd.DataFrame:
        """Paid and saved (cache) USD per day, model, run or column (`opencode_lab.lab.spend.spend`)."""
        from .spend import spend

        shown.frames()
        return spend(self.require_runlog(), since, by=by)

    def budget(self) -> pd.DataFrame:
        """Each ``[budget]`` period: its limit, what every process sharing the run log spent, and its state."""
        from .spend import budget_status

        shown.frames()
        return budget_status(self.spending)

    def runs(self) -> pd.DataFrame:
        """Runs kept in the SQLite run log."""
        shown.frames()
        return self.require_runlog().runs()

    def load_run(self, run: str) -> pd.DataFrame:
        """The results frame of a logged run, by name or id; with ``score_human`` when people labelled its rows."""
        from ..evals.labels import human_scores

        shown.frames()
        runlog = self.require_runlog()
        frame, labels = runlog.load_run(run), runlog.labels(run)
        return human_scores(frame, labels) if len(labels) else frame

    def label(
        self,
        run: str,
        prompt_id: Any,
        model: str,
        verdict: str | float,
        *,
        sample: int = 0,
        over: str | None = None,
        who: str | None = None,
        note: str | None = None,
    ) -> None:
        """Record a person's judgement of a row of *run* in the run log, with who and when: a verdict
        (``correct``, ``wrong``, ``partial`` or a score in [0, 1]) or, with *over* (another model of the run), a
        preference for *model*'s answer (``better``, ``worse``, ``tie``).  See `opencode_lab.evals.labels`."""
        import getpass

        from ..evals.labels import label_value

        value, word = label_value(verdict, over)
        runlog = self.require_runlog()
        frame = runlog.load_run(run)
        for name in (model, *([over] if over is not None else [])):
            asked = frame[(frame["model"] == name) & (frame["prompt_id"].astype(str) == str(prompt_id))]
            if not (asked["sample"] == sample).any():
                models = ", ".join(sorted(set(frame["model"].astype(str))))
                raise InvalidRequestError(
                    f"run {run!r} has no row prompt_id={prompt_id!r}, model={name!r}, sample={sample} "
                    f"(its models: {models}; prompt ids {frame['prompt_id'].min()}..{frame['prompt_id'].max()})"
                )
        row = {"prompt_id": prompt_id, "model": model, "sample": sample, "over": over, "value": value}
        runlog.add_label(run, {**row, "label": word, "who": who or getpass.getuser(), "note": note})

    def labels(self, run: str | None = None, *, battles: bool = False) -> pd.DataFrame:
        """Every human label of *run* (default: of every run), oldest first; ``battles=True`` gives them as
        battles for `opencode_lab.ratings` (preferences, and verdicts on two models' answers to one prompt)."""
        from ..evals.labels import label_battles

        shown.frames()
        frame = self.require_runlog().labels(run)
        return label_battles(frame) if battles else frame

    def diff(
        self,
        baseline: str | pd.DataFrame,
        new: str | pd.DataFrame,
        metric: str = "score",
        *,
        scorer: Scorer | Mapping[str, Scorer] | None = None,
        **kwargs: Any,
    ) -> Diff:
        """Run *new* against *baseline* (run names or ids from the run log, or results frames), prompt by prompt,
        with the paired test across runs; *scorer* grades both first (the run log keeps answers, not scores).
        See `opencode_lab.analysis.diff.diff` for the keywords."""
        from ..analysis.diff import diff
        from ..evals.grading import agrade

        shown.frames()
        frames = [self._logged(run) if isinstance(run, str) else run for run in (baseline, new)]
        if scorer is not None:
            frames = [self.block_on(agrade(self, frame, scorer)) for frame in frames]
        return diff(frames[0], frames[1], metric, **kwargs)

    def _logged(self, run: str) -> pd.DataFrame:
        """A logged run's rows by prompt, model and sample: the log keeps models in the order their calls
        finished, which is no order a comparison should depend on."""
        frame = self.load_run(run)
        return frame.sort_values(["prompt_id", "model", "sample"], kind="stable").reset_index(drop=True)

    def require_runlog(self) -> RunLog:
        """The run log with every pending row written, or an error saying why there is none (the queries,
        the dashboard and the reports all read it)."""
        self.flush()
        runlog = self.runlog
        if runlog is None and self.runlog_error is not None:
            raise ConfigError(str(self.runlog_error))
        if runlog is None:
            raise LabError("the run log is off (OC_RUNLOG=off); set OC_RUNLOG to a path to keep runs")
        return runlog
