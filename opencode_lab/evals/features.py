"""Prompt features for learned selectors: the pluggable step between a prompt table and a predictor.

A feature step is any object with ``fit(table) -> self``, ``transform(table) -> matrix`` and
``spec() -> dict`` (JSON, so a saved selector can rebuild it); *table* is a DataFrame with a
``prompt`` column and the prompt table's other columns.  `Lexical` is the built-in: TF-IDF of
words and symbols (``+``, ``*``, ``?`` carry meaning in prompts), the prompt's length and share of
digits, and the numeric or categorical columns the user names.  Embeddings can be added later as
another step with the same three methods.  scikit-learn (the ``learn`` extra) is imported here only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..core.errors import ConfigError, InvalidRequestError

if TYPE_CHECKING:
    import pandas as pd

_TOKENS = r"(?u)\b\w+\b|[^\w\s]"
_CLIP, _WEIGHT = 3.0, 0.2  # scaled numbers: at most 3 standard deviations, each worth 0.2 of a unit


class FeatureStep(Protocol):
    def fit(self, table: pd.DataFrame) -> FeatureStep: ...

    def transform(self, table: pd.DataFrame) -> Any: ...

    def spec(self) -> dict[str, Any]: ...


def require_sklearn() -> None:
    """Fail with the extra's name, not an ImportError deep inside a fit."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ConfigError("learned selectors need scikit-learn: pip install 'opencode-lab[learn]'") from None


@dataclass
class Lexical:
    """TF-IDF + length + digit share + the named *columns* (numbers scaled, text one-hot encoded)."""

    columns: Sequence[str] = ()
    max_features: int = 2000
    _parts: dict[str, Any] = field(default_factory=dict, repr=False)

    def fit(self, table: pd.DataFrame) -> Lexical:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        self._check_columns(table)
        numeric, categorical = self._split(table)
        self._parts = {
            "tfidf": TfidfVectorizer(
                token_pattern=_TOKENS, ngram_range=(1, 2), max_features=self.max_features, sublinear_tf=True
            ).fit(table["prompt"]),
            "scale": StandardScaler().fit(self._numbers(table, numeric)),
            "numeric": numeric,
            "categorical": categorical,
        }
        if categorical:
            self._parts["onehot"] = OneHotEncoder(handle_unknown="ignore").fit(table[categorical].astype(str))
        return self

    def transform(self, table: pd.DataFrame) -> Any:
        from scipy import sparse

        if not self._parts:
            raise InvalidRequestError("the feature step is not fitted yet")
        self._check_columns(table)
        parts = [
            self._parts["tfidf"].transform(table["prompt"]),
            sparse.csr_matrix(self._numeric_part(table)),
        ]
        if self._parts["categorical"]:
            parts.append(self._parts["onehot"].transform(table[self._parts["categorical"]].astype(str)))
        return sparse.hstack(parts, format="csr")

    def _numeric_part(self, table: pd.DataFrame) -> Any:
        """The scaled numbers, clipped and weighted so that none outweighs the text: the TF-IDF row has norm
        1, and an unusually long prompt must not find its neighbours by length alone."""
        import numpy as np

        scaled = self._parts["scale"].transform(self._numbers(table, self._parts["numeric"]))
        return np.clip(scaled, -_CLIP, _CLIP) * _WEIGHT

    def spec(self) -> dict[str, Any]:
        return {"type": "lexical", "columns": list(self.columns), "max_features": self.max_features}

    def _check_columns(self, table: pd.DataFrame) -> None:
        missing = [c for c in self.columns if c not in table.columns]
        if missing:
            raise InvalidRequestError(
                f"feature column {missing[0]!r} is not in the prompts (columns: {', '.join(map(str, table.columns))})"
            )

    def _split(self, table: pd.DataFrame) -> tuple[list[str], list[str]]:
        import pandas as pd

        numeric = [c for c in self.columns if pd.api.types.is_numeric_dtype(table[c])]
        return numeric, [c for c in self.columns if c not in numeric]

    @staticmethod
    def _numbers(table: pd.DataFrame, numeric: list[str]) -> Any:
        import numpy as np

        text = table["prompt"].astype(str)
        length = text.str.len().to_numpy(dtype=float)
        digits = text.str.count(r"\d").to_numpy(dtype=float) / np.maximum(length, 1.0)
        own = table[numeric].to_numpy(dtype=float) if numeric else np.empty((len(table), 0))
        if own.size and not np.isfinite(own).all():
            raise InvalidRequestError(f"feature columns {numeric} hold NaN or infinite values")
        return np.column_stack([np.log1p(length), digits, own])


def feature_step(spec: dict[str, Any] | FeatureStep | None) -> FeatureStep:
    """A fresh feature step: the default, one rebuilt from a saved spec, or the user's own (unfitted) step."""
    if spec is None:
        return Lexical()
    if isinstance(spec, dict):
        if spec.get("type") != "lexical":
            raise ConfigError(f"unknown feature step {spec.get('type')!r} in a saved selector (known: 'lexical')")
        return Lexical(columns=list(spec.get("columns", [])), max_features=int(spec.get("max_features", 2000)))
    for method in ("fit", "transform", "spec"):
        if not callable(getattr(spec, method, None)):
            raise InvalidRequestError(f"features must have fit, transform and spec methods; {spec!r} has no {method}")
    return spec
