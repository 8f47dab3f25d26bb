"""``opencode-lab``: the same Lab from a shell or a CI job.

opencode-lab chat -m local/smollm2-135m "Name three primes."
opencode-lab models [FILTER]
opencode-lab compare data/prompts.csv -m local/smollm2-135m -m local/gemma-3-270m --scorer contains --out results.csv
opencode-lab stats results.csv [--all]
opencode-lab diff baseline-run new-run --fail-on-regression
opencode-lab demo
opencode-lab dashboard --port 5006
opencode-lab sla --since 7d --html sla.html
opencode-lab audit verify | export [--out FILE] | prune --before DATE
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import LabError
from ..evals import scorers as _scorers
from ..lab.lab import Lab
from .audit_cli import add_audit_commands
from .diagnosis import Context, explain, root_cause
from .display import cut_note
from .options import add_param_arguments, param_values
from .tables import table

if TYPE_CHECKING:
    import pandas as pd

DEMO_MODELS = ("local/smollm2-135m", "local/gemma-3-270m")
DEMO_MAX_TOKENS = 48


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        lab = Lab.from_file(args.config) if args.config else Lab.from_env()
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.command(lab, args) or 0)
    except LabError as exc:
        print(f"error: {type(root_cause(exc)).__name__}: {explain(exc, Context.of(lab))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        lab.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opencode-lab", description="Prompt experiments and LLM comparison.")
    parser.add_argument("--config", help="TOML settings file (default: $OC_CONFIG or ./opencode_lab.toml)")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    chat = sub.add_parser("chat", help="ask one prompt and stream the answer")
    chat.add_argument("prompt")
    chat.add_argument("-m", "--model", action="append", help="model id or alias (repeat for a fallback list)")
    chat.add_argument("-s", "--system")
    add_param_arguments(chat)
    chat.add_argument("--no-cache", action="store_true")
    chat.set_defaults(command=_chat)

    models = sub.add_parser("models", help="list the model catalog")
    models.add_argument("filter", nargs="?")
    models.add_argument("--tag")
    models.add_argument("--refresh", action="store_true")
    models.set_defaults(command=_models)

    compare = sub.add_parser("compare", help="run a prompts CSV against several models")
    compare.add_argument("prompts", type=Path, help="CSV with a 'prompt' column (other columns carry through)")
    compare.add_argument("-m", "--model", action="append", required=True)
    compare.add_argument("-n", type=int, default=1, help="samples per prompt and model")
    add_param_arguments(compare)
    compare.add_argument("--system")
    compare.add_argument("--concurrency", type=int)
    compare.add_argument("--budget-usd", type=float)
    compare.add_argument("--run", help="name that makes the run resumable")
    compare.add_argument("--no-cache", action="store_true")
    compare.add_argument("--out", type=Path, help="write results (.csv or .parquet)")
    compare.add_argument("--plot", type=Path, help="write the overview plot (.png, .svg, .pdf)")
    _add_scorer_arguments(compare)
    compare.set_defaults(command=_compare)

    stats = sub.add_parser("stats", help="per-model summary of a results file or a logged run")
    stats.add_argument("source", help="results .csv/.parquet, or a run name or id from the run log")
    stats.add_argument("--by", default="model")
    stats.add_argument("--all", action="store_true", help="every statistic, not the compact view")
    stats.set_defaults(command=_stats)

    _add_diff_command(sub)

    demo = sub.add_parser("demo", help="compare the bundled local models offline")
    demo.add_argument("--prompts", type=Path, default=Path("data/prompts.csv"))
    demo.add_argument("--plot", type=Path, default=Path("opencode_lab_demo.png"))
    demo.set_defaults(command=_demo)
    _add_dashboard(sub)
    _add_sla(sub)
    add_audit_commands(sub)
    return parser


def _add_sla(sub: Any) -> None:
    sla = sub.add_parser("sla", help="SLA figures per deployment against the [slo] objectives")
    sla.add_argument("--since", default="30d", help="span back from now: 24h, 7d, 30d, ...")
    sla.add_argument("--html", type=Path, help="also write the self-contained HTML report here")
    sla.set_defaults(command=_sla)


def _sla(lab: Lab, args: argparse.Namespace) -> int:
    from .sla_report import sla_report

    _print_frame(lab.sla(args.since))
    if args.html:
        sla_report(lab.require_runlog(), lab.settings.slo, args.html, args.since)
        print(f"report written to {args.html}")
    return 0


def _add_dashboard(sub: Any) -> None:
    dashboard = sub.add_parser("dashboard", help="serve the analytics dashboard over the run log (extra ui)")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    dashboard.add_argument("--port", type=int, default=5006)
    dashboard.add_argument("--refresh", type=float, default=5.0, help="seconds between re-reads of the run log")
    dashboard.set_defaults(command=_dashboard)


def _dashboard(lab: Lab, args: argparse.Namespace) -> int:
    from .dashboard import serve

    lab.require_runlog()  # no run log (OC_RUNLOG=off): one line now, not an error page per viewer
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: serving on {args.host}, beyond this machine: anyone who can reach it reads every prompt "
            "and answer in the run log, without a password",
            file=sys.stderr,
        )
    print(f"dashboard at http://{args.host}:{args.port}/dashboard (Ctrl-C stops it)", flush=True)
    serve(lab, host=args.host, port=args.port, refresh_s=args.refresh)
    return 0


def _models_arg(models: list[str] | None) -> Any:
    if not models:
        return None
    return models[0] if len(models) == 1 else models


def _chat(lab: Lab, args: argparse.Namespace) -> int:
    result = None
    options = {**param_values(args), "system": args.system, "cache": not args.no_cache}
    for item in lab.stream_events(args.prompt, _models_arg(args.model), **options):
        if isinstance(item, str):
            sys.stdout.write(item)
            sys.stdout.flush()
        else:
            result = item
    if result is not None:
        sys.stdout.write(cut_note(result, args.max_tokens))
    sys.stdout.write("\n")
    if result is not None:
        print(result.footer(), file=sys.stderr)
    return 0


def _models(lab: Lab, args: argparse.Namespace) -> int:
    frame = lab.models(args.filter, tag=args.tag, refresh=args.refresh)
    _print_frame(frame.drop(columns=["description"]))
    return 0


def _read_prompts(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise LabError(f"prompts file {path} does not exist")
    return pd.read_csv(path)


def _compare(lab: Lab, args: argparse.Namespace) -> int:
    prompts = _read_prompts(args.prompts)
    frame = lab.compare(
        prompts,
        args.model,
        scorer=_scorer_of(args, prompts),
        n=args.n,
        system=args.system,
        concurrency=args.concurrency,
        budget_usd=args.budget_usd,
        run=args.run,
        cache=not args.no_cache,
        progress=sys.stderr.isatty(),
        **param_values(args),
    )
    _print_frame(lab.stats(frame))
    if args.out:
        _write(frame, args.out)
        print(f"results: {args.out}")
    if args.plot:
        lab.plot(frame).savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")
    return 0 if frame["error_type"].isna().any() else 1


def _write(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)


def _stats(lab: Lab, args: argparse.Namespace) -> int:
    _print_frame(lab.stats(_results(lab, args.source), by=args.by), "all" if args.all else None)
    return 0


def _results(lab: Lab, source: str) -> pd.DataFrame:
    """A results .csv/.parquet file, or a run name or id from the run log."""
    import pandas as pd

    path = Path(source)
    if path.suffix in (".csv", ".parquet") and path.is_file():
        return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    return lab.load_run(source)


def _add_diff_command(sub: Any) -> None:
    diff = sub.add_parser("diff", help="which prompts got worse or better from a baseline run to a new one")
    diff.add_argument("baseline", help="results .csv/.parquet, or a run name or id from the run log")
    diff.add_argument("new", help="the same, for the new run")
    diff.add_argument("--metric", default=None, help="column to compare (default: score, or the one --scorer adds)")
    diff.add_argument("--models", nargs=2, metavar=("BASE_MODEL", "NEW_MODEL"), help="compare these two models")
    diff.add_argument("--fail-on-regression", action="store_true", help="exit 1 when the new run is detectably worse")
    _add_scorer_arguments(diff)
    diff.set_defaults(command=_diff)


def _diff(lab: Lab, args: argparse.Namespace) -> int:
    """The diff's summary and its regressions; exit status 1 with ``--fail-on-regression`` when detectably worse."""
    frames = [_results(lab, source) for source in (args.baseline, args.new)]
    args.prompts = args.baseline
    scorer = _scorer_of(args, frames[0])
    metric = args.metric or ("score" if scorer is None or len(args.scorer) == 1 else f"score_{args.scorer[0]}")
    result = lab.diff(frames[0], frames[1], metric, scorer=scorer, models=tuple(args.models) if args.models else None)
    print(f"{metric}: new run ({args.new}) against baseline ({args.baseline})")
    _print_frame(result.summary)
    worse = result.regressions()
    if len(worse):
        print(f"\nregressions ({len(worse)}):")
        _print_frame(worse.drop(columns=["status"]))
    return 1 if args.fail_on_regression and result.regressed else 0


def _demo(lab: Lab, args: argparse.Namespace) -> int:
    """Compare the two bundled local models on the bundled prompts, no network, no key; with an
    ``expected`` column, score each answer (does it contain the expected text?) and print accuracy."""
    missing = [m for m in DEMO_MODELS if m not in lab.catalog.deployments]
    if missing:
        raise LabError(f"the demo needs the local models ({', '.join(missing)}); pip install 'opencode-lab[local]'")
    table = _read_prompts(args.prompts) if args.prompts.is_file() else _builtin_prompts()
    scorer = _scorers.contains(ignore_case=True) if "expected" in table.columns else None
    frame = lab.compare(
        table, list(DEMO_MODELS), temperature=0.0, seed=42, max_tokens=DEMO_MAX_TOKENS, scorer=scorer,
        progress=sys.stderr.isatty(),
    )  # fmt: skip
    for row in frame.to_dict("records"):
        print(_demo_line(row))
    stats = lab.stats(frame)
    if scorer is not None:
        print("\naccuracy (the answer contains the expected text; 95 % interval):")
        for model, s in stats.iterrows():
            print(f"  {model:<20} {s.score_mean:>4.0%}  [{s.score_ci_low:.0%}, {s.score_ci_high:.0%}]  "
                  f"({round(s.score_mean * s.n_score)}/{s.n_score} answers)")  # fmt: skip
    print()
    summary = stats[["calls", "ok", "latency_p50_s", "latency_p95_s", "output_tokens_per_s", "output_tokens"]]
    _print_frame(summary)
    lab.plot(frame).savefig(args.plot, dpi=110)
    print(f"\noverview plot: {args.plot.resolve()}")
    return 0 if frame["error_type"].isna().all() else 1


def _demo_line(row: Mapping[Hashable, Any]) -> str:
    """``model  ✓ prompt -> answer`` (✓/✗ when scored; a cut answer says so)."""
    score = row.get("score")
    mark = "" if score is None or score != score else "✓ " if score >= 1 else "✗ "
    if isinstance(row["response"], str):
        cut = f"… [cut at max_tokens={DEMO_MAX_TOKENS}]" if row.get("finish_reason") == "length" else ""
        answer = " ".join(row["response"].split())[:70] + cut
    else:
        answer = f"[{row['error_type']}] {row['error']}"
    return f"{row['model']:<20} {mark}{row['prompt'][:44]:<44} -> {answer}"


def _builtin_prompts() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({"prompt": ["What is the capital of France?", "What is 2 + 2?"], "expected": ["Paris", "4"]})


def _print_frame(frame: pd.DataFrame, columns: str | None = None) -> None:
    """A frame through the display layer the notebook uses (`opencode_lab.frontends.tables`)."""
    print(table(frame, columns).to_text())


#: ``--scorer`` names: the built-ins that grade an answer against the prompts CSV's reference column
CLI_SCORERS = ("contains", "exact", "regex", "one_of", "numeric", "similarity", "json_valid")
_REFERENCE_FREE = ("json_valid",)
_CASE_FREE = ("numeric", "similarity", "json_valid")


def _add_scorer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scorer", action="append", choices=CLI_SCORERS,
        help="score each answer against the reference column (repeat for several: score_<name> columns)",
    )  # fmt: skip
    parser.add_argument("--reference", default="expected", help="the CSV column scorers read (default: expected)")
    parser.add_argument("--ignore-case", action="store_true", help="contains/exact/regex/one_of ignore case")


def _scorer_of(args: argparse.Namespace, prompts: pd.DataFrame) -> Any:
    """The ``--scorer`` choice(s) as compare's ``scorer=``; a missing reference column is refused before any
    request is sent."""
    names = list(dict.fromkeys(args.scorer or ()))
    needs = [n for n in names if n not in _REFERENCE_FREE]
    if needs and args.reference not in prompts.columns:
        raise LabError(
            f"--scorer {needs[0]} reads the column {args.reference!r}, which {args.prompts} does not have "
            f"(columns: {', '.join(map(str, prompts.columns))}); add it or name another with --reference"
        )
    built: dict[str, Any] = {}
    for name in names:
        options: dict[str, Any] = {} if name in _REFERENCE_FREE else {"reference": args.reference}
        if name not in _CASE_FREE:
            options["ignore_case"] = args.ignore_case
        built[name] = getattr(_scorers, name)(**options)
    if not built:
        return None
    return next(iter(built.values())) if len(built) == 1 else built


