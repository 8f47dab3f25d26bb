"""The analytics dashboard over the run log (Panel, extra ``ui``): served by ``opencode-lab dashboard`` or shown
inline in a notebook by ``oc.dashboard()``.

Pages: traffic and cost over time (by provider, model, deployment, run or region), latency
percentiles, the error mix over time, health (SLA figures, burn rates, incidents), budget and
spend, the slowest and most failing deployments, and the calls behind one point.  All figures
come from the lab layer (`opencode_lab.lab.activity`, `sla`, `spend`) and are drawn with
matplotlib as PNG, so the page needs no JavaScript of ours and no resource from the internet:
Panel serves its own.  Every open page re-reads the run log every ``refresh_s`` seconds, so
calls another process writes appear without a restart.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..analysis.ops_plots import plot_availability, plot_burn, plot_series
from ..core.errors import ConfigError
from ..lab import activity
from ..lab.sla import BURN_SPANS, incidents_of, real_attempts, sla
from ..lab.spend import budget_status, spend

if TYPE_CHECKING:
    import pandas as pd

    from ..lab.lab import Lab

SPANS: dict[str, str] = {"last hour": "1h", "last day": "24h", "last week": "7d", "last 30 days": "30d"}
#: a time bucket's name: its pandas frequency and its length in seconds
BUCKETS: dict[str, tuple[str, float]] = {"5 minutes": ("5min", 300.0), "hour": ("1h", 3600.0), "day": ("1D", 86400.0)}
PAGES: tuple[str, ...] = ("Traffic & cost", "Latency", "Errors", "Health", "Budget", "Slowest & failing", "Calls")


def _panel() -> Any:
    try:
        import panel as pn
    except ImportError:
        raise ConfigError("the dashboard needs Panel: pip install 'opencode_lab[ui]'") from None
    return pn


class Dashboard:
    """One viewer's dashboard: its controls, its panes, and `refresh`, which re-reads the run log."""

    def __init__(self, lab: Lab, *, span: str = "last day", bucket: str = "hour", refresh_s: float = 5.0) -> None:
        pn = _panel()
        self.lab = lab
        self.refresh_s = refresh_s
        self.span = pn.widgets.Select(label="Span", options=list(SPANS), value=span, width=140)
        self.bucket = pn.widgets.Select(label="Bucket", options=list(BUCKETS), value=bucket, width=120)
        self.by = pn.widgets.Select(label="Group by", options=list(activity.GROUPS[:4]), value="provider", width=140)
        self.reload = pn.widgets.Button(label="Refresh", color="primary", width=100)
        self.point_group = pn.widgets.Select(label="Group", options=[], width=220, css_classes=["oc-point-group"])
        self.point_bucket = pn.widgets.Select(
            label="Time bucket", options=[], width=220, css_classes=["oc-point-bucket"]
        )
        self.totals = pn.pane.HTML("", sizing_mode="stretch_width")
        self.updated = pn.pane.HTML("", styles={"color": "#666"})
        figure = {"dpi": 110, "tight": True, "format": "png", "sizing_mode": "scale_width", "max_width": 1000}
        self.figures = {name: pn.pane.Matplotlib(None, **figure) for name in
                        ("calls", "cost", "p50", "p95", "errors", "availability", "burn", "spend")}  # fmt: skip
        self.tables = {name: pn.pane.DataFrame(None, sizing_mode="stretch_width", max_rows=200,
                                               css_classes=[f"oc-{name}"])  # what a browser test finds it by
                       for name in ("sla", "incidents", "budget", "spend", "slowest", "failing", "calls")}  # fmt: skip
        self._rows: pd.DataFrame | None = None
        self._seen: tuple[Any, ...] = ()
        self._drawn = 0.0
        for widget in (self.span, self.bucket, self.by):
            widget.param.watch(lambda _: self.refresh(), "value")
        self.point_group.param.watch(lambda _: self._show_calls(), "value")
        self.point_bucket.param.watch(lambda _: self._show_calls(), "value")
        self.reload.on_click(lambda _: self.refresh())
        self.refresh()

    # -- layout ------------------------------------------------------------------------------

    def view(self) -> Any:
        """The whole dashboard: totals and controls over one tab per page."""
        pn = _panel()
        f, t = self.figures, self.tables
        note = pn.pane.Markdown
        pages = [
            pn.Column(f["calls"], f["cost"]),
            pn.Column(note("Latency of the successful attempts per deployment."), f["p50"], f["p95"]),
            pn.Column(f["errors"]),
            pn.Column(
                f["availability"],
                f["burn"],
                note("### SLA per deployment"),
                t["sla"],
                note("### Incidents"),
                t["incidents"],
            ),
            pn.Column(note("### Budgets (`[budget]`)"), t["budget"], f["spend"], note("### Spend per day"), t["spend"]),
            pn.Column(note("### Slowest (latency p95)"), t["slowest"], note("### Most failing"), t["failing"]),
            pn.Column(
                note("Pick a group and a time bucket of the traffic figure to see its calls."),
                pn.Row(self.point_group, self.point_bucket),
                t["calls"],
            ),
        ]
        tabs = pn.Tabs(*zip(PAGES, pages, strict=True), dynamic=False)
        controls = pn.Row(self.span, self.bucket, self.by, self.reload, self.updated, align="end")
        return pn.Column("# opencode_lab dashboard", self.totals, controls, tabs, sizing_mode="stretch_width")

    def live(self) -> Any:
        """`view`, re-read from the run log every ``refresh_s`` seconds while the page is open."""
        pn = _panel()
        layout = self.view()
        pn.state.add_periodic_callback(self.poll, period=int(self.refresh_s * 1000))
        return layout

    def poll(self) -> None:
        """Redraw when the run log has news, or once a minute (the span slides on): a redraw takes a while,
        and a page busy redrawing every second would not hear its own controls."""
        if self.lab.require_runlog().version() != self._seen or time.monotonic() - self._drawn > 60:
            self.refresh()

    # -- data --------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the run log and redraw every page."""
        runlog = self.lab.require_runlog()
        self._seen, self._drawn = runlog.version(), time.monotonic()
        since, (freq, width), by = SPANS[self.span.value], BUCKETS[self.bucket.value], self.by.value
        rows = self._rows = activity.calls(runlog, since)
        _offer(self.by, activity.groups_of(rows))  # with region when the run log has it
        now = time.time()
        attempts = real_attempts(runlog, now - since_seconds(since), now)
        self._totals(rows)
        f = self.figures
        calls = activity.per_bucket(rows, "prompt", by, freq, "count")
        f["calls"].object = plot_series(calls, title=f"Calls per {self.bucket.value} by {by}", ylabel="calls",
                                        bucket_s=width, bars=True, counts=True)  # fmt: skip
        cost = activity.per_bucket(rows, "cost_usd", by, freq)
        f["cost"].object = plot_series(
            cost, title=f"Cost per {self.bucket.value} by {by}", ylabel="USD", bucket_s=width, bars=True
        )
        for q, name in ((0.5, "p50"), (0.95, "p95")):
            table = activity.latency_per_bucket(attempts, freq, q)
            f[name].object = plot_series(
                table, title=f"Latency {name} per {self.bucket.value}", ylabel="seconds", bucket_s=width
            )
        errors = activity.errors_per_bucket(attempts, freq)
        f["errors"].object = plot_series(errors, title=f"Failed attempts per {self.bucket.value} by error type",
                                         ylabel="attempts", bucket_s=width, bars=True, counts=True,
                                         errors=True)  # fmt: skip
        self._health(attempts, since, now)
        self._budget(since)
        self._points(calls)
        self.updated.object = f"updated {time.strftime('%H:%M:%S', time.gmtime(now))} UTC"

    def _totals(self, rows: pd.DataFrame) -> None:
        failed = int(rows["error_type"].notna().sum())
        cost = rows["cost_usd"].sum(min_count=1)
        shown = "n/a" if cost != cost else f"${cost:.4f}"
        cells = (("calls", len(rows)), ("failed", failed), ("cache hits", int(rows["cached"].sum())), ("cost", shown))
        self.totals.object = "".join(
            f'<span class="oc-total" style="display:inline-block;margin-right:2.5em">'
            f'<span style="color:#666">{label}</span> <b data-total="{label}" style="font-size:1.6em">{value}</b>'
            "</span>"
            for label, value in cells
        )

    def _health(self, attempts: pd.DataFrame, since: str, now: float) -> None:
        report = sla(self.lab.require_runlog(), self.lab.settings.slo, since, now=now)
        f, t = self.figures, self.tables
        f["availability"].object = plot_availability(report) if len(report) else None
        f["burn"].object = plot_burn(report, BURN_SPANS) if report["availability_objective"].notna().any() else None
        t["sla"].object = report.drop(columns=[f"burn_{w}" for w in BURN_SPANS])
        t["incidents"].object = incidents_of(attempts, now)
        slowest, failing = activity.worst(report)
        t["slowest"].object, t["failing"].object = slowest, failing

    def _budget(self, since: str) -> None:
        runlog = self.lab.require_runlog()
        t = self.tables
        t["budget"].object = budget_status(self.lab.spending) if self.lab.settings.budget else None
        daily = spend(runlog, since, by="day")
        t["spend"].object = daily
        self.figures["spend"].object = plot_series(
            daily[["paid_usd", "saved_usd"]],
            title="Paid and saved (cache) per day",
            ylabel="USD",
            bucket_s=86400,
            bars=True,
        )

    def _points(self, calls: pd.DataFrame) -> None:
        _offer(self.point_group, [str(c) for c in calls.columns])
        _offer(self.point_bucket, [str(b) for b in calls.index][::-1])
        self._show_calls()

    def _show_calls(self) -> None:
        import pandas as pd

        rows, group, bucket = self._rows, self.point_group.value, self.point_bucket.value
        if rows is None or not group or not bucket:
            self.tables["calls"].object = None
            return
        behind = activity.calls_behind(rows, self.by.value, group, pd.Timestamp(bucket), BUCKETS[self.bucket.value][0])
        columns = ["asked_at", "model", "served_by", "prompt", "response", "error_type", "latency_s", "cost_usd"]
        self.tables["calls"].object = behind[[c for c in columns if c in behind.columns]]


def _offer(select: Any, options: list[str]) -> None:
    """Set a select's options only when they changed: a browser re-draws the control on every change, which
    would undo a choice being made while the page refreshes."""
    if list(select.options) != options:
        select.options = options
    if select.value not in options:
        select.value = options[0] if options else None


def since_seconds(span: str) -> float:
    """The length of a span such as ``24h`` in seconds."""
    from ..lab.history import since_epoch

    return -(since_epoch(span, now=0.0) or 0.0)


def dashboard(lab: Lab, **options: Any) -> Any:
    """The dashboard as a Panel object, to show inline in a notebook (refreshing while shown)."""
    pn = _panel()
    pn.extension()
    return Dashboard(lab, **options).live()


def serve(lab: Lab, *, host: str = "127.0.0.1", port: int = 5006, refresh_s: float = 5.0) -> None:
    """Serve the dashboard at ``http://HOST:PORT/dashboard`` until interrupted; each browser tab gets its own
    `Dashboard` over the one *lab*."""
    pn = _panel()
    origins = [f"127.0.0.1:{port}", f"localhost:{port}"] if host in ("127.0.0.1", "localhost") else [f"{host}:{port}"]
    pn.serve(
        {"dashboard": lambda: Dashboard(lab, refresh_s=refresh_s).live()},
        address=host,
        port=port,
        show=False,
        title="opencode_lab dashboard",
        websocket_origin=origins,
        verbose=False,
    )
