"""Proving a selector before using it: cross-validated points on the cost–quality plane, and their scores.

`evaluate` takes a selector's predictions of every prompt by predictors that never saw its text
(grouped k-fold by prompt, `Selector.cross_predict`), then places on the plane (mean cost, mean
quality over the prompts every model was scored on):

- each single model, and the random mixtures between them (their hull);
- the Oracle: true per-prompt qualities and costs, swept over willingness to pay;
- the selector, swept over willingness to pay (its cross-validated predictions, real qualities/costs);
- a cascade swept over its check's thresholds: the one given, else cheapest-to-dearest checked by the
  quality column itself (a perfect check, the upper bound of any real one).

Each system's AIQ is taken over the single models' cost range, with a percentile bootstrap over prompts
(every system resampled on the same prompts, so differences are paired).  With two models, APGR and
CPT(50 %)/CPT(80 %) of the selector and the Oracle are reported too.  The verdict says in words whether
the selector's AIQ beats the best single model and the random mixtures, given its interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..analysis import frontier
from ..core.errors import InvalidRequestError
from .cascade import Cascade, checked, replay
from .choosing import Rule, choose
from .selection import Training

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

_SWEEP = 41  # willingness-to-pay settings per sweep (quantiles of the switching points)
MIXTURE = "random mixture"
ORACLE = "oracle"


@dataclass
class SelectionReport:
    """What `Selector.evaluate` found: ``points`` (one row per operating point), ``metrics`` (AIQ etc. with
    95 % bootstrap intervals), ``verdict`` (in words) and ``figure()``."""

    points: pd.DataFrame
    metrics: pd.DataFrame
    verdict: str
    better: bool
    prompts: int
    folds: np.ndarray = field(repr=False)
    quality: str = "quality"
    cost: str = "cost"

    def figure(self) -> Figure:
        from ..analysis.frontier_plot import plot_plane

        return plot_plane(self.points, self.metrics, x=self.cost, y=self.quality, title=self.verdict)

    def __repr__(self) -> str:
        return f"{self.verdict}\n\n{self.metrics.to_string(index=False)}"

    def _repr_html_(self) -> str:
        import html

        return f"<p>{html.escape(self.verdict)}</p>" + self.metrics.to_html(index=False, float_format="{:.4g}".format)


@dataclass(frozen=True)
class Subject:
    """What is evaluated: the training data, the selector's out-of-fold predictions (prompts x models) and
    each prompt's fold, its name and columns, and the results rows a cascade's check reads (or None)."""

    data: Training
    predicted: np.ndarray
    folds: np.ndarray
    name: str
    quality: str
    cost: str
    rows: pd.DataFrame | None


@dataclass
class _System:
    """A system's per-prompt quality and cost at each of its settings (prompts x settings)."""

    name: str
    kind: str
    quality: np.ndarray
    cost: np.ndarray
    settings: list[Any]


def evaluate(
    subject: Subject, *, bootstrap: int = 200, seed: int = 0, cascade: Cascade | None = None
) -> SelectionReport:
    """Score every system on the cost–quality plane over the prompts every model was scored on."""
    data = subject.data
    plan = cascade or _perfect_cascade(data, subject.quality)
    names = [*data.models, ORACLE, MIXTURE, subject.name, plan.name]
    if len(set(names)) < len(names):
        raise InvalidRequestError(f"the systems on the plane need distinct names, got {names}: rename the selector")
    complete = np.isfinite(data.quality).all(axis=1)
    if complete.sum() < 2:
        raise InvalidRequestError("fewer than two prompts were scored for every model: nothing to evaluate")
    q, c = data.quality[complete], np.where(np.isfinite(data.cost), data.cost, data.mean_cost)[complete]
    pred = subject.predicted[complete]
    systems = [_System(m, "model", q[:, [i]], c[:, [i]], [None]) for i, m in enumerate(data.models)]
    systems.append(_sweep(ORACLE, "oracle", q, c, q, c))
    systems.append(_sweep(subject.name, "selector", q, c, pred, np.broadcast_to(data.mean_cost, q.shape)))
    if cascade is not None and subject.rows is None:
        raise InvalidRequestError("this selector was loaded from a file: pass results= to replay a cascade on them")
    values = checked(plan, data, subject.rows if cascade is not None else None, subject.quality)
    systems.append(_cascade_sweep(plan, data, values[complete], complete))
    draws = np.random.default_rng(seed).integers(0, len(q), size=(bootstrap, len(q)))
    point, boot = _aiqs(systems, np.arange(len(q))), [_aiqs(systems, d) for d in draws]
    metrics = _aiq_table(systems, point, boot)
    if len(data.models) == 2:
        metrics = metrics.merge(_two_model_table(q, pred, data.models, draws, subject.name), on="system", how="left")
    verdict, better = _verdict(systems, point, boot, subject.name, len(q))
    return SelectionReport(
        _points(systems), metrics, verdict, better, len(q), subject.folds, quality=subject.quality, cost=subject.cost
    )


def _perfect_cascade(data: Training, quality: str) -> Cascade:
    """Cheapest to dearest, accepting an answer whose quality is the best seen: a check that is never wrong."""
    from .cascade import cascade

    order = [data.models[i] for i in np.argsort(data.mean_cost, kind="stable")]
    return cascade(order, quality, threshold=float(np.nanmax(data.quality)), name="cascade (perfect check)")


def _sweep(name: str, kind: str, q: np.ndarray, c: np.ndarray, pred: np.ndarray, known_cost: np.ndarray) -> _System:
    """Choose by *pred* and *known_cost* at every willingness to pay where a choice can change; score the
    choices with the real *q* and *c*."""
    switches = []
    for i in range(q.shape[1]):
        for j in range(q.shape[1]):
            dq, dc = pred[:, i] - pred[:, j], known_cost[:, i] - known_cost[:, j]
            useful = (dq > 0) & (dc > 0)
            switches.append(dc[useful] / dq[useful])
    found = np.concatenate(switches)
    grid = np.unique(np.quantile(found, np.linspace(0, 1, _SWEEP))) if len(found) else np.empty(0)
    settings = [0.0, *(grid * (1 + 1e-9)), np.inf]
    picks = np.column_stack([choose(pred, known_cost, Rule(willingness_to_pay=w)) for w in settings])
    rows = np.arange(len(q))[:, None]
    return _System(name, kind, q[rows, picks], c[rows, picks], settings)


def _cascade_sweep(plan: Cascade, data: Training, values: np.ndarray, complete: np.ndarray) -> _System:
    """The cascade at its own threshold and at every threshold where its decisions change (the distinct values
    its check gave, up to `_SWEEP` of them): from "accept every first answer" to its strictest setting."""
    seen = np.unique(values[np.isfinite(values)])
    if len(seen) > _SWEEP:
        seen = np.unique(np.quantile(seen, np.linspace(0, 1, _SWEEP)))
    settings = sorted({-np.inf, *map(float, seen), plan.threshold})
    runs = [replay(plan, _rows(data, complete), values, t) for t in settings]
    quality = np.column_stack([r.quality for r in runs])
    return _System(plan.name, "cascade", quality, np.column_stack([r.cost for r in runs]), settings)


def _rows(data: Training, keep: np.ndarray) -> Training:
    return Training(data.table[keep].reset_index(drop=True), data.quality[keep], data.cost[keep], data.models)


def _hull_aiq(cost: np.ndarray, quality: np.ndarray, lo: float, hi: float) -> float:
    xs, ys = frontier.ndch(cost, quality)
    return frontier.aiq(xs, ys, lo, hi)


def _aiqs(systems: list[_System], rows: np.ndarray) -> dict[str, float]:
    """Every system's AIQ on the prompts *rows* (a bootstrap resample, or all of them)."""
    means = {s.name: (s.cost[rows].mean(axis=0), s.quality[rows].mean(axis=0)) for s in systems}
    singles = [means[s.name] for s in systems if s.kind == "model"]
    single_cost = np.array([c[0] for c, _ in singles])
    lo, hi = float(single_cost.min()), float(single_cost.max())
    out = {name: _hull_aiq(c, qq, lo, hi) for name, (c, qq) in means.items()}
    out[MIXTURE] = _hull_aiq(single_cost, np.array([qq[0] for _, qq in singles]), lo, hi)
    return out


def _aiq_table(systems: list[_System], point: dict[str, float], boot: list[dict[str, float]]) -> pd.DataFrame:
    import pandas as pd

    kinds = {s.name: s.kind for s in systems} | {MIXTURE: "mixture"}
    rows = []
    for name, value in point.items():
        low, high = _interval([b[name] for b in boot])
        rows.append({"system": name, "kind": kinds[name], "aiq": value, "aiq_low": low, "aiq_high": high})
    return pd.DataFrame(rows)


def _interval(values: list[float]) -> tuple[float, float]:
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def _two_model_table(
    q: np.ndarray, pred: np.ndarray, models: tuple[str, ...], draws: np.ndarray, name: str
) -> pd.DataFrame:
    """APGR and CPT(50 %)/CPT(80 %) of the selector and the Oracle, strong = the better model on average."""
    import pandas as pd

    strong = int(np.argmax(q.mean(axis=0)))
    weak = 1 - strong
    rows = []
    for system, advantage in ((name, pred[:, strong] - pred[:, weak]), (ORACLE, q[:, strong] - q[:, weak])):

        def measures(r: np.ndarray, advantage: np.ndarray = advantage) -> list[float]:
            shares, pgr = frontier.pgr_curve(q[r, weak], q[r, strong], advantage[r])
            return [frontier.apgr(shares, pgr), frontier.cpt(shares, pgr, 0.5), frontier.cpt(shares, pgr, 0.8)]

        point = measures(np.arange(len(q)))
        boot = np.array([measures(d) for d in draws]).reshape(len(draws), 3)
        row: dict[str, Any] = {"system": system, "strong": models[strong], "weak": models[weak]}
        for k, name in enumerate(("apgr", "cpt50", "cpt80")):
            low, high = _interval(list(boot[:, k]))
            row |= {name: point[k], f"{name}_low": low, f"{name}_high": high}
        rows.append(row)
    return pd.DataFrame(rows)


def _verdict(
    systems: list[_System], point: dict[str, float], boot: list[dict[str, float]], name: str, n: int
) -> tuple[str, bool]:
    """Does the selector's AIQ beat the best of the single models and their mixtures, beyond the noise?
    The rival is the best one on all prompts; the interval is of the paired difference over resamples."""
    rivals = [s.name for s in systems if s.kind == "model"] + [MIXTURE]
    rival = max(rivals, key=lambda r: point[r])
    diff = point[name] - point[rival]
    low, high = _interval([b[name] - max(b[r] for r in rivals) for b in boot])
    interval = f"AIQ difference {diff:+.3f}, 95 % interval [{low:+.3f}, {high:+.3f}], {n} prompts"
    if np.isfinite(low) and low > 0:
        return f"The selector beats the best single model or mixture ({rival}): {interval}.", True
    return f"The selector is no better than the best single model or mixture ({rival}): {interval}.", False


def _points(systems: list[_System]) -> pd.DataFrame:
    """Tidy operating points: system, kind, setting (willingness to pay, or escalations), cost, quality."""
    import pandas as pd

    rows = []
    for s in systems:
        for k, setting in enumerate(s.settings):
            rows.append(
                {
                    "system": s.name,
                    "kind": s.kind,
                    "setting": setting,
                    "cost": float(s.cost[:, k].mean()),
                    "quality": float(s.quality[:, k].mean()),
                }
            )
    return pd.DataFrame(rows)
