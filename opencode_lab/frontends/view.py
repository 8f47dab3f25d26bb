"""``df.oc.view()``: an interactive results view for triage, built on Panel's Tabulator.

One row per call, with its status, each scorer's mark and reason, and the answer's start.
Above it: what to show (all rows, failures, disagreements between models, cut answers), a
score range on one scorer and a text search; headers sort (by any scorer too).  A click on a
row shows the whole call (`opencode_lab.frontends.triage.transcript_html`) and buttons that
label it (correct, partial, wrong) in the run log, with who and when (`Lab.label`).

Without a live kernel (exported HTML, a notebook opened without running it, nbval) the
output degrades to a static table of the first rows: the HTML carries both, and a CSS rule
hides the static table once Panel has drawn the live one.  Panel's JavaScript is inlined
into the notebook (``pn.extension(inline=True)``), so nothing is fetched from the internet;
the text that changes (row count, transcript, status) is shown by ``StaticText`` widgets,
because Panel 1.9 re-links a pane's stylesheets to its CDN when the pane's object changes.
Panel is the ``ui`` extra, imported when a view is made.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Any

from ..analysis.metrics import score_columns
from ..core.errors import LabError
from ..core.schema import TABLE
from .tables import missing, table, text
from .triage import SHOW, reason_columns, select, transcript_html

if TYPE_CHECKING:
    import pandas as pd

    from ..lab.lab import Lab

PAGE_SIZE = 20
STATIC_ROWS = 30
_LABELS = ("correct", "partial", "wrong")
_STATIC_CSS = ".oc-view:has([data-root-id] *)>.oc-view-static{display:none}"


def _panel() -> Any:
    try:
        import panel as pn
    except ImportError as exc:
        raise LabError("the interactive view needs Panel: pip install 'opencode_lab[ui]'") from exc
    return pn


class View:
    """The interactive view of a results frame (see the module doc); ``layout`` is the Panel object."""

    def __init__(self, results: pd.DataFrame, *, lab: Lab | None = None, who: str | None = None) -> None:
        from .wide import REQUIRED

        missing_columns = [c for c in REQUIRED if c not in results.columns]
        if missing_columns:
            raise ValueError(f"view() needs a results frame; missing column(s): {', '.join(missing_columns)}")
        pn = _panel()
        self.results = results.reset_index(drop=True)
        self.lab = lab
        self.who = who or getpass.getuser()
        self.scores = score_columns(self.results)
        self.rows = self._rows()
        pn.extension("tabulator", inline=True)
        self.show = pn.widgets.RadioButtonGroup(label="show", options=list(SHOW), value="all")
        self.search = pn.widgets.TextInput(label="search", placeholder="prompt, answer, error or reason text")
        first = self.scores[0] if self.scores else None
        self.scorer = pn.widgets.Select(label="scorer", options=self.scores, value=first, visible=bool(self.scores))
        low, high = self._bounds()
        self.score_range = pn.widgets.RangeSlider(label="score range", start=low, end=high, value=(low, high),
                                                  step=(high - low) / 20, visible=bool(self.scores))  # fmt: skip
        self.count = pn.widgets.StaticText(value="", margin=(0, 10))
        self.table = pn.widgets.Tabulator(
            self.rows, selectable=1, disabled=True, show_index=False, pagination="remote", page_size=PAGE_SIZE,
            layout="fit_columns", sizing_mode="stretch_width", widths=self._widths(),
        )  # fmt: skip
        self.transcript = pn.widgets.StaticText(
            value="<i>click a row to see the whole call</i>", sizing_mode="stretch_width"
        )
        self.status = pn.widgets.StaticText(value="", margin=(0, 10))
        self.buttons = [pn.widgets.Button(label=word, disabled=True) for word in _LABELS]
        for button in self.buttons:
            button.on_click(lambda event, word=button.label: self.label(word))
        for widget in (self.show, self.search, self.scorer, self.score_range):
            widget.param.watch(lambda _: self.refresh(), "value")
        self.search.param.watch(lambda _: self.refresh(), "value_input")
        self.table.param.watch(lambda _: self._selected(), "selection")
        self.layout = pn.Column(
            pn.Row(self.show, self.search),
            pn.Row(self.scorer, self.score_range, self.count),
            self.table,
            pn.Row(*self.buttons, self.status),
            self.transcript,
            sizing_mode="stretch_width",
        )
        self.refresh()

    # -- state ------------------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Apply the filters: the table shows the matching rows, the count says how many."""
        mask = select(
            self.results,
            self.show.value,
            scorer=self.scorer.value,
            score_range=tuple(self.score_range.value) if self.scores and self._narrowed() else None,
            search=self.search.value_input or self.search.value or "",
        )
        self.table.value = self.rows[mask.to_numpy()]
        self.count.value = f"<b>{int(mask.sum()):,}</b> of {len(self.results):,} rows"

    def open(self, row: int) -> str:
        """Show the call of results row *row* (its position in the results frame) and return its transcript."""
        self.current = row
        self.transcript.value = transcript_html(self.results.iloc[row])
        for button in self.buttons:
            button.disabled = False
        return str(self.transcript.value)

    def label(self, verdict: str) -> None:
        """Label the open row in the run log (`Lab.label`) and show the label in the table."""
        row = getattr(self, "current", None)
        if row is None:
            return
        record = self.results.iloc[row]
        try:
            lab = self.lab if self.lab is not None else _default_lab()
            lab.label(str(record["run_id"]), record["prompt_id"], str(record["model"]), verdict,
                      sample=int(record["sample"]), who=self.who)  # fmt: skip
        except (LabError, ValueError) as exc:
            self.status.value = f"not saved: {exc}"
            return
        self.rows.loc[row, "label"] = verdict
        self.status.value = f"saved: {verdict} ({self.who})"
        self.refresh()

    def _selected(self) -> None:
        if self.table.selection:
            self.open(int(self.table.value.index[self.table.selection[0]]))

    def _narrowed(self) -> bool:
        return tuple(self.score_range.value) != (self.score_range.start, self.score_range.end)

    def _widths(self) -> dict[str, str]:
        """Column widths in % of the table: text gets the room, marks and labels little."""
        reasons = [c for c in self.rows.columns if str(c).startswith("reason")]
        widths = {"prompt": 20, "model": 9, "status": 12, "label": 8, **dict.fromkeys(self.scores, 7)}
        widths.update(dict.fromkeys(reasons, max(8, 20 // max(1, len(reasons)))))
        return {name: f"{share}%" for name, share in widths.items() if name in self.rows.columns}

    def _bounds(self) -> tuple[float, float]:
        import pandas as pd

        if not self.scores:
            return 0.0, 1.0
        values = pd.concat([pd.to_numeric(self.results[c], errors="coerce") for c in self.scores])
        if values.dropna().empty:
            return 0.0, 1.0
        low, high = float(min(0.0, values.min())), float(max(1.0, values.max()))
        return low, high

    def _rows(self) -> pd.DataFrame:
        """What the table shows per results row: identity, status, marks and reasons, the answer's start, label."""
        import pandas as pd

        r = self.results
        out = pd.DataFrame(index=r.index)
        out["prompt"] = [text(" ".join(str(p).split()), 160) for p in r["prompt"]]
        out["model"] = r["model"].astype(str)
        if r["sample"].nunique(dropna=True) > 1:
            out["sample"] = r["sample"]
        out["status"] = [_status(e, f) for e, f in zip(r["error_type"], r.get("finish_reason", [None] * len(r)),
                                                      strict=True)]  # fmt: skip
        out["label"] = r["score_human"].map(_human) if "score_human" in r.columns else ""
        reasons = set(reason_columns(r))
        for name in self.scores:
            out[name] = pd.to_numeric(r[name], errors="coerce")
            reason = "reason" if name == "score" else "reason_" + name.removeprefix("score_")
            if reason in reasons:
                out[reason] = [("" if missing(v) else text(" ".join(str(v).split()), 120)) for v in r[reason]]
        out["answer"] = [
            text(" ".join(str(a).split()), 200) if not missing(a) else "" for a in r["response"]
        ]
        return out

    # -- display ----------------------------------------------------------------------------------------------------

    def static_html(self) -> str:
        """The first rows as a plain table: what a reader without a live kernel sees."""
        shown = self.rows.head(STATIC_ROWS).copy()
        shown.attrs[TABLE] = "view"
        more = f" (first {STATIC_ROWS} of {len(self.rows):,} rows)" if len(self.rows) > STATIC_ROWS else ""
        note = f'<div class="oc-note">static view{more}: run the cell for filters, search and transcripts</div>'
        return table(shown).to_html() + note

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        data, metadata = self.layout._repr_mimebundle_(include, exclude)
        live = data.get("text/html", "")
        data["text/html"] = (
            f'<div class="oc-view"><style>{_STATIC_CSS}</style><div class="oc-view-static">{self.static_html()}</div>'
            f"{live}</div>"
        )
        data["text/plain"] = repr(self)
        return data, metadata

    def __repr__(self) -> str:
        shown = self.rows.head(STATIC_ROWS).copy()
        shown.attrs[TABLE] = "view"
        return f"View of {len(self.rows):,} results rows\n{table(shown).to_text(40)}"


def _default_lab() -> Lab:
    from ..lab.default import default_lab

    return default_lab()


def _status(error_type: Any, finish_reason: Any) -> str:
    if not missing(error_type):
        return f"failed: {error_type}"
    return "cut" if finish_reason == "length" else "ok"


def _human(value: Any) -> str:
    if missing(value):
        return ""
    return {1.0: "correct", 0.0: "wrong", 0.5: "partial"}.get(float(value), f"{float(value):.2g}")
