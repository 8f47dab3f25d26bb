"""Spending limits per calendar period (``[budget]``), kept against the run log by every process sharing it.

The run log is the ledger: before a call is sent (a cache hit is free and always allowed),
what every process has paid since the period began is read from it, together with this
session's own attempts not yet written.  At ``warn_at`` of a limit a warning is logged once
per period; at the limit the call is refused with `BudgetExceededError`, recorded like any
other failure.  Processes that check at the same moment may each send one more call, so a
limit can be passed by what the calls in flight cost; it is never passed by a call that
starts after the ledger shows the limit reached.  Without a run log (``OC_RUNLOG=off``)
only this session's own spending counts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import BudgetExceededError
from ..core.objectives import Budgets, period_end, period_start
from ..core.secrets import get_logger

if TYPE_CHECKING:
    from .journal import Journal

log = get_logger(__name__)


@dataclass(frozen=True)
class PeriodSpend:
    """What was paid in the current calendar *period* against its limit."""

    period: str
    limit_usd: float
    spent_usd: float
    start: float
    end: float
    warn_at: float

    @property
    def state(self) -> str:
        """``exceeded`` at or past the limit, ``warning`` at or past ``warn_at`` of it, else ``ok``."""
        if self.spent_usd >= self.limit_usd:
            return "exceeded"
        return "warning" if self.spent_usd >= self.warn_at * self.limit_usd else "ok"


class SpendingGuard:
    """Refuses a call once a period's limit is reached; warns once per period past ``warn_at``."""

    def __init__(self, budgets: Budgets, journal: Journal) -> None:
        self.budgets = budgets
        self.journal = journal
        self._warned: set[tuple[str, float]] = set()

    def periods(self, now: float | None = None) -> list[PeriodSpend]:
        """Each limited period's spending so far, from the shared ledger (see the module doc)."""
        now = time.time() if now is None else now
        self.journal.flush()
        runlog = self.journal.runlog
        out = []
        for period, limit in self.budgets.limits_usd.items():
            start = period_start(period, now)
            if runlog is not None:
                spent = runlog.spent_since(start)
            else:
                spent = sum(_paid(r) for r in self.journal.records if r["timestamp"] >= start)
            out.append(PeriodSpend(period, limit, spent, start, period_end(period, now), self.budgets.warn_at))
        return out

    def check(self) -> None:
        """Raise `BudgetExceededError` when a limit is reached; log a warning the first time one passes warn_at."""
        if not self.budgets:
            return
        for spend in self.periods():
            if spend.state == "exceeded":
                raise BudgetExceededError(
                    f"the {spend.period}'s budget of ${spend.limit_usd:.4f} is spent (${spend.spent_usd:.4f} paid "
                    f"since {time.strftime('%Y-%m-%d %H:%M', time.gmtime(spend.start))} UTC, by every process "
                    "sharing the run log); request not sent. Raise [budget] "
                    f"{spend.period}_usd or wait for the next {spend.period}"
                )
            if spend.state == "warning" and (spend.period, spend.start) not in self._warned:
                self._warned.add((spend.period, spend.start))
                log.warning(
                    "%.0f %% of the %s's budget spent ($%.4f of $%.4f); calls are refused at the limit",
                    100 * spend.spent_usd / spend.limit_usd, spend.period, spend.spent_usd, spend.limit_usd,
                )  # fmt: skip


def _paid(record: dict[str, object]) -> float:
    cost = record.get("cost_usd")
    return cost if isinstance(cost, float) and not math.isnan(cost) else 0.0
