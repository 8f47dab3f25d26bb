"""How a number reads wherever the toolkit prints one (tables, footers, the CLI): three significant figures.

Core holds it because a `ChatResult` footer and the display layer above must print the same
digits; the display layer adds units, percentages and missing values on top.
"""

from __future__ import annotations

import math


def significant(value: float, digits: int = 3) -> str:
    """*value* to *digits* significant figures, without exponent between a millionth and a million; float
    noise below 1e-12 (an interval bound of 5.55e-17 for 0 failures) reads as 0."""
    x = float(value)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    x = round(x, 12)
    if x == 0:
        return "0"
    rounded = float(f"{x:.{digits}g}")
    size = abs(rounded)
    if not 1e-6 <= size < 1e6:
        return f"{rounded:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(size)))
    return f"{rounded:,.{decimals}f}"
