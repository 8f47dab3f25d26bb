"""A compare's spending limit: what has been spent, what is in flight, and what the next row may cost."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..core.errors import BudgetExceededError, InvalidRequestError
from ..core.types import ChatResult

if TYPE_CHECKING:
    from ..core.errors import LabError
    from ..session.session import Session
    from .plan import Job


class Budget:
    """Keeps ``budget_usd``: a row is sent only when what was spent, what is in flight and the row's own
    estimate fit under the limit.  Prices are the dearest among what may answer each model."""

    def __init__(self, limit_usd: float, prices: dict[str, tuple[float, float]]) -> None:
        self.limit_usd = limit_usd
        self.prices = prices
        self.spent_usd = 0.0
        self.in_flight_usd = 0.0
        self._output_seen: dict[str, tuple[int, int]] = {}
        """Per model: (sum, count) of the output tokens of its answers so far, for the estimate."""

    @classmethod
    def of(cls, lab: Session, limit_usd: float | None, models: list[str], fallback: bool) -> Budget | None:
        """The budget of a compare (None without ``budget_usd``); an unknown price is refused before sending."""
        if limit_usd is None:
            return None
        return cls(limit_usd, _prices(lab, models, fallback))

    def estimate_usd(self, job: Job) -> float:
        """What *job* may cost: prompt tokens plus ``max_tokens`` when given, else the mean output this
        compare has seen from that model so far (the prompt's own length before the first answer)."""
        price_in, price_out = self.prices[job.model]
        prompt_tokens = job.request.estimated_tokens() - (job.request.params.max_tokens or 0)
        total, count = self._output_seen.get(job.model, (0, 0))
        output_tokens = job.request.params.max_tokens or (total / count if count else prompt_tokens)
        return (price_in * prompt_tokens + price_out * output_tokens) / 1e6

    def refusal(self, estimate_usd: float) -> BudgetExceededError | None:
        """Why a row estimated at *estimate_usd* may not be sent now, or None when it fits."""
        if self.spent_usd + self.in_flight_usd + estimate_usd <= self.limit_usd:
            return None
        return BudgetExceededError(
            f"budget of ${self.limit_usd:.4f} reached (spent ${self.spent_usd:.4f}, "
            f"in flight ${self.in_flight_usd:.4f}); request not sent"
        )

    def settle(self, model: str, outcome: ChatResult | LabError) -> None:
        """Count what an answer cost (unknown costs count nothing) and how long it was."""
        if not isinstance(outcome, ChatResult):
            return
        if not math.isnan(outcome.cost_usd):
            self.spent_usd += outcome.cost_usd
        if outcome.output_tokens is not None:
            total, count = self._output_seen.get(model, (0, 0))
            self._output_seen[model] = (total + outcome.output_tokens, count + 1)


def _prices(lab: Session, models: list[str], fallback: bool) -> dict[str, tuple[float, float]]:
    """The dearest (input, output) price per million tokens among what may answer each model; a budget
    cannot be kept with a model whose price is unknown, so that is refused before anything is sent."""
    out = {}
    for model in models:
        groups = lab.catalog.resolve(model)
        deployments = [d for g in (groups if fallback else groups[:1]) for d in g.deployments]
        unknown = [d.id for d in deployments if d.input_price_per_mtok is None or d.output_price_per_mtok is None]
        if unknown:
            raise InvalidRequestError(
                f"budget_usd needs prices, and {', '.join(unknown)} has no known price; set input_price and "
                f"output_price in its [models.*] table, or drop budget_usd"
            )
        out[model] = (
            max(d.input_price_per_mtok or 0.0 for d in deployments),
            max(d.output_price_per_mtok or 0.0 for d in deployments),
        )
    return out
