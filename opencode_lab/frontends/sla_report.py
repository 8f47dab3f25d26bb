"""The SLA report as one self-contained HTML file: figures embedded as base64 PNG, no script, no link, no font or
style from anywhere else, so it opens offline and can be mailed or archived as it is.

Its figures and tables are those of `opencode_lab.lab.sla` (per deployment, against the ``[slo]``
objectives) and its incidents; cells are escaped (deployment names come from configuration and
vendors).  matplotlib and pandas are imported inside.
"""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..analysis.ops_plots import plot_availability, plot_burn, plot_series
from ..lab.activity import per_bucket
from ..lab.history import since_epoch
from ..lab.sla import BURN_SPANS, BURN_WINDOWS, incidents_of, real_attempts, sla

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ..core.objectives import Objectives
    from ..lab.history import Since
    from ..session.runlog import RunLog

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
.note { color: #555; }
"""


def sla_report(
    runlog: RunLog, objectives: Objectives, path: str | Path | None = None, since: Since = "30d", *,
    now: float | None = None,
) -> str:  # fmt: skip
    """The report's HTML for the span *since* up to *now*; written to *path* (UTF-8) when given."""
    now = time.time() if now is None else now
    frame = sla(runlog, objectives, since, now=now)
    attempts = real_attempts(runlog, now - 3 * 86400.0 if len(frame) else now, now)
    parts = [
        f"<h1>SLA report</h1><p class='note'>{len(frame)} deployment(s); span: {html.escape(str(since))} up to "
        f"{_utc(now)}. Availability = successful attempts / attempts (cache hits excluded), with its 95 % "
        "Wilson interval; burn rate = error rate over the rate the objective allows (1 spends the budget exactly "
        "on time). Alerts follow the SRE workbook's multiwindow pairs: "
        + ", ".join(
            f"{long}/{short} &gt; {threshold:g} → {severity}" for long, short, threshold, severity in BURN_WINDOWS
        )
        + ".</p>"
    ]
    if frame.empty:
        parts.append("<p>No attempt in this span.</p>")
    else:
        parts.append(_figure(plot_availability(frame)))
        if frame["availability_objective"].notna().any():
            parts.append(_figure(plot_burn(frame, BURN_SPANS)))
        hourly = per_bucket(attempts.assign(failed=attempts["status"] != "ok"), "failed", "served_by", "1h")
        parts.append(
            _figure(
                plot_series(
                    hourly,
                    title="Failed attempts per hour (last 3 days)",
                    ylabel="attempts",
                    bucket_s=3600,
                    counts=True,
                )
            )
        )
        parts += ["<h2>Per deployment</h2>", _table(frame)]
        in_span = real_attempts(runlog, since_epoch(since, now=now), now)
        parts += ["<h2>Incidents</h2>", _table(incidents_of(in_span, now))]
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>SLA report</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    if path is not None:
        Path(path).write_text(page, encoding="utf-8")
    return page


def _figure(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<img alt='{html.escape(fig.axes[0].get_title())}' src='data:image/png;base64,{data}'>"


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(escape=True, float_format=lambda v: f"{v:.4g}", na_rep="–", border=0)


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))
