"""Synthetic compare frames with known structure, for the learned selectors' tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

WORDS = "capital river author poem colour planet history language animal city".split()


def synthetic(n: int = 120, *, seed: int = 1, share: float = 0.6, scores: Callable[..., tuple[float, float]] | None = None
              ) -> pd.DataFrame:
    """Model A (cost 2) answers arithmetic-looking prompts right, model B (cost 1) the rest; *scores*
    (rng, arithmetic) -> (A's score, B's score) replaces that rule."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        arithmetic = rng.random() < share
        if arithmetic:
            prompt = f"What is {rng.integers(10, 99)} + {rng.integers(10, 99)} * {rng.integers(2, 9)}?"
        else:
            prompt = f"Name the {rng.choice(WORDS)} of the {rng.choice(WORDS)} called {i}"
        a, b = scores(rng, arithmetic) if scores else (float(arithmetic), float(not arithmetic))
        for model, score, cost in (("A", a, 2.0), ("B", b, 1.0)):
            rows.append({"prompt": prompt, "model": model, "response": f"{model} says", "error_type": None,
                         "score": score, "cost_usd": cost, "sample": 0, "prompt_id": i})
    return pd.DataFrame(rows)


@pytest.fixture
def make_task() -> Callable[..., pd.DataFrame]:
    return synthetic


@pytest.fixture
def arithmetic_task() -> pd.DataFrame:
    return synthetic()
