"""Learned model selectors: predict, per prompt, the quality each model's answer will have, then choose.

A selector picks the *model* (the router then picks that model's deployment).  It is fitted from a
researcher's own results (`learn_selector`): one predictor per model, from prompt features
(`opencode_lab.evals.features`) to the quality column, with scikit-learn's k-nearest neighbours
(``"knn"``, cosine distance, as RouterBench's KNN router) or a ridge regression (``"linear"``).
It chooses by one of three rules: the best predicted quality per unit of willingness to pay
(``quality - cost / willingness_to_pay``), the cheapest model predicted to reach a quality
*target*, or the best model within a *budget* per prompt.  Cost is each model's mean cost in the
training results (any column: dollars, seconds, output tokens).

Saved selectors are JSON: the training table and the specification, refitted on load, so loading
a file never runs code from it (no pickle).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import ConfigError, InvalidRequestError
from ..core.files import read_capped
from .choosing import Rule, choose, rule
from .features import FeatureStep, feature_step, require_sklearn
from .selection import Training, training
from .selection_report import SelectionReport, Subject, evaluate

if TYPE_CHECKING:
    import pandas as pd

    from .cascade import Cascade

FORMAT = "opencode_lab.selector"
MAX_FILE_BYTES = 64 * 1024 * 1024  # a selector file holds a training table: large, never unbounded
VERSION = 1
ESTIMATORS = ("knn", "linear")


@dataclass(frozen=True)
class Choice:
    """One prompt's selection: the model, its predicted quality and every candidate's prediction."""

    model: str
    predicted_quality: float
    predictions: dict[str, float]


class Selector:
    """A fitted selector; make one with `learn_selector` or `Selector.load`."""

    def __init__(
        self,
        data: Training,
        *,
        quality: str,
        cost: str,
        estimator: str = "knn",
        k: int = 10,
        features: FeatureStep | dict[str, Any] | None = None,
        name: str = "selector",
        rows: pd.DataFrame | None = None,
    ) -> None:
        require_sklearn()
        if estimator not in ESTIMATORS:
            raise InvalidRequestError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidRequestError(f"k must be a positive integer (neighbours), got {k!r}")
        self.data, self.quality, self.cost, self.estimator, self.k, self.name = (
            data,
            quality,
            cost,
            estimator,
            k,
            name,
        )
        self.rule = Rule()
        """How `select` trades quality against cost when a call gives no rule (see `using`)."""
        self.rows = rows
        """The results learned from (kept in memory, not saved): what a cascade's check reads."""
        self._features = feature_step(features)
        self._fitted = self._fit(np.arange(len(data.table)))

    @property
    def models(self) -> tuple[str, ...]:
        return self.data.models

    @property
    def costs(self) -> dict[str, float]:
        """Each model's mean cost in the training results: what choosing it is expected to cost."""
        return dict(zip(self.models, map(float, self.data.mean_cost), strict=True))

    def __repr__(self) -> str:
        return (
            f"Selector({self.name!r}, models={list(self.models)}, {self.estimator}, "
            f"quality={self.quality!r}, cost={self.cost!r}, prompts={len(self.data.table)})"
        )

    def _fit(self, rows: np.ndarray) -> tuple[FeatureStep, list[Any]]:
        """Features and one predictor per model, fitted on the training prompts *rows* only."""
        step = copy.deepcopy(self._features).fit(self.data.table.iloc[rows].reset_index(drop=True))
        x = step.transform(self.data.table.iloc[rows].reset_index(drop=True))
        predictors = []
        for m in range(len(self.models)):
            y = self.data.quality[rows, m]
            seen = np.isfinite(y)
            predictors.append(self._predictor(int(seen.sum())).fit(x[seen], y[seen]) if seen.any() else None)
        return step, predictors

    def _predictor(self, n: int) -> Any:
        if self.estimator == "knn":
            from sklearn.neighbors import KNeighborsRegressor

            return KNeighborsRegressor(n_neighbors=min(self.k, n), metric="cosine", algorithm="brute")
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0)

    def _predict(self, fitted: tuple[FeatureStep, list[Any]], table: pd.DataFrame) -> np.ndarray:
        step, predictors = fitted
        x = step.transform(table.reset_index(drop=True))
        low, high = np.nanmin(self.data.quality), np.nanmax(self.data.quality)
        out = np.full((len(table), len(self.models)), np.nan)
        for m, predictor in enumerate(predictors):
            if predictor is not None:
                out[:, m] = np.clip(predictor.predict(x), low, high)
        return out

    def predict(self, prompts: object) -> pd.DataFrame:
        """Predicted quality of every model on each prompt (rows: prompts, columns: models)."""
        import pandas as pd

        table = self.prompt_table(prompts)
        return pd.DataFrame(self._predict(self._fitted, table), columns=list(self.models), index=table.index)

    def prompt_table(self, prompts: object) -> pd.DataFrame:
        """*prompts* (a string, list, Series or DataFrame with ``prompt``) as the table the features read."""
        import pandas as pd

        if isinstance(prompts, str):
            table = pd.DataFrame({"prompt": [prompts]})
        elif isinstance(prompts, pd.DataFrame):
            if "prompt" not in prompts.columns:
                raise InvalidRequestError("the prompts DataFrame has no 'prompt' column")
            table = prompts
        elif isinstance(prompts, pd.Series | list | tuple):
            table = pd.DataFrame({"prompt": list(prompts)})
        else:
            raise InvalidRequestError(
                f"prompts must be a string, list, Series or DataFrame, not {type(prompts).__name__}"
            )
        if not all(isinstance(p, str) for p in table["prompt"]):
            raise InvalidRequestError("every prompt must be a string")
        return table

    def using(
        self, *, target: float | None = None, budget: float | None = None, willingness_to_pay: float | None = None
    ) -> Selector:
        """This selector choosing by another rule (what ``chat``/``compare`` through it use): the cheapest model
        predicted to reach *target*, the best within *budget* per prompt, or the best value at
        *willingness_to_pay*; none given: the best predicted quality."""
        other = copy.copy(self)
        other.rule = rule(target, budget, willingness_to_pay)
        return other

    def select(
        self,
        prompts: object,
        *,
        target: float | None = None,
        budget: float | None = None,
        willingness_to_pay: float | None = None,
        eligible: np.ndarray | None = None,
    ) -> list[Choice]:
        """A `Choice` per prompt, by the rule given (else this selector's `rule`; by default the best predicted
        quality, ties to the cheaper).  *eligible* (prompts x models, bool) rules models out for some prompts
        (context windows, tools)."""
        given = rule(target, budget, willingness_to_pay)
        predicted = self.predict(prompts).to_numpy()
        picks = choose(predicted, self.data.mean_cost, given if given != Rule() else self.rule, eligible)
        return [
            Choice(
                self.models[i], float(predicted[p, i]), dict(zip(self.models, map(float, predicted[p]), strict=True))
            )
            for p, i in enumerate(picks)
        ]

    def evaluate(
        self,
        *,
        folds: int = 5,
        bootstrap: int = 200,
        seed: int = 0,
        cascade: Cascade | None = None,
        results: pd.DataFrame | None = None,
    ) -> SelectionReport:
        """Cross-validated by prompt: the cost–quality plane with AIQ, APGR, CPT and bootstrap intervals
        (see `opencode_lab.evals.selection_report.evaluate`).  *results*: the rows a cascade's check reads
        (default: those learned from, when this selector was not loaded from a file)."""
        if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 1:
            raise InvalidRequestError(f"bootstrap must be a positive integer (resamples), got {bootstrap!r}")
        predicted, fold_of = self.cross_predict(folds, seed)
        rows = results if results is not None else self.rows
        subject = Subject(self.data, predicted, fold_of, self.name, self.quality, self.cost, rows)
        return evaluate(subject, bootstrap=bootstrap, seed=seed, cascade=cascade)

    def cross_predict(self, folds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-fold predictions (prompts x models) and each prompt's fold: a prompt is predicted only by
        predictors that never saw its text."""
        from sklearn.model_selection import GroupKFold

        texts = self.data.table["prompt"].to_numpy()
        n = len(texts)
        if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= n:
            raise InvalidRequestError(f"folds must be an integer from 2 to the number of prompts ({n}), got {folds!r}")
        order = np.random.default_rng(seed).permutation(n)  # GroupKFold is deterministic: shuffle the groups
        predicted, fold_of = np.full((n, len(self.models)), np.nan), np.full(n, -1)
        for f, (train, test) in enumerate(GroupKFold(n_splits=folds).split(order, groups=texts[order])):
            train, test = order[train], order[test]
            predicted[test] = self._predict(self._fit(train), self.data.table.iloc[test])
            fold_of[test] = f
        return predicted, fold_of

    def save(self, path: str | Path) -> Path:
        """Write the selector as JSON (its specification and training table; no executable state)."""
        spec = self._features.spec()
        if not isinstance(spec, dict):
            raise InvalidRequestError("the feature step's spec() must return a JSON object to be saved")
        document = {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "quality": self.quality,
            "cost": self.cost,
            "estimator": self.estimator,
            "k": self.k,
            "features": spec,
            "training": self.data.to_json(),
        }
        target = Path(path)
        target.write_text(json.dumps(document, ensure_ascii=False, allow_nan=False))
        return target

    @classmethod
    def load(cls, path: str | Path, *, models: Sequence[str] | None = None, name: str | None = None) -> Selector:
        """Read a saved selector and refit it; with *models*, refuse one trained on a different model set."""
        try:
            document = json.loads(read_capped(Path(path), MAX_FILE_BYTES, f"selector {str(path)!r}"))
        except InvalidRequestError as exc:
            raise ConfigError(exc.message) from None
        except ValueError as exc:
            raise ConfigError(f"cannot read selector {str(path)!r}: {exc}") from None
        if not isinstance(document, Mapping) or document.get("format") != FORMAT:
            raise ConfigError(f"{str(path)!r} is not a saved selector")
        if document.get("version") != VERSION:
            raise ConfigError(
                f"selector {str(path)!r} has format version {document.get('version')!r}; "
                f"this opencode_lab reads version {VERSION}"
            )
        try:
            data = Training.from_json(document["training"])
            selector = cls(
                data,
                quality=str(document["quality"]),
                cost=str(document["cost"]),
                estimator=str(document["estimator"]),
                k=int(document["k"]),
                features=dict(document["features"]),
                name=name or str(document.get("name", Path(path).stem)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"selector {str(path)!r} is damaged: {exc!r}") from None
        if models is not None and sorted(models) != sorted(selector.models):
            raise ConfigError(
                f"selector {str(path)!r} was trained on models {sorted(selector.models)}, not {sorted(models)}"
            )
        return selector


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
    """Learn which model to ask for a prompt from *results* (a compare frame, or several concatenated).

    *quality*: the column to maximise (a score); *cost*: the column to spend (``cost_usd``, ``latency_s``,
    ``output_tokens``...).  *features*: column names of the prompt table to use besides the text
    (numbers scaled, text one-hot), or a feature step of your own (see `opencode_lab.evals.features`).
    """
    from .features import Lexical

    require_sklearn()
    columns: Sequence[str] = ()
    if features is None or (isinstance(features, Sequence) and not isinstance(features, str)):
        columns = list(features or ())
        step: FeatureStep = Lexical(columns=columns)
    elif isinstance(features, str):
        raise InvalidRequestError(f"features must be a list of column names, not the string {features!r}")
    else:
        step = feature_step(features)
    data = training(results, quality, cost, columns)
    return Selector(data, quality=quality, cost=cost, estimator=estimator, k=k, features=step, name=name, rows=results)
