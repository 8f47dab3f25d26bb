"""One try at one deployment: what the router records and errors carry (a leaf, so both can import it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Attempt:
    """One try at one deployment: the unit of the metrics records."""

    number: int
    deployment: str
    provider: str
    model: str
    status: Literal["ok", "error"]
    latency_s: float
    started_at: float
    error_type: str | None = None
    http_status: int | None = None
    error: str | None = None
    ttft_s: float | None = None
