"""IPython magics: ``%%chat``, ``%models``, ``%chat_stats`` and ``%chat_config``.

A thin front end over the Lab: parse the options, fill ``{name}`` fields from the
notebook's variables, call the Lab, display the answer.  Routing, caching and the
session records all happen inside the Lab; nothing here talks to a provider.

``%load_ext opencode_lab`` registers the magics on the default Lab
(`opencode_lab.default_lab`); ``load_ipython_extension(ip, lab=...)`` or setting
``ChatMagics.lab`` points them at another one.
"""

from __future__ import annotations

import builtins
import contextlib
import keyword
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from IPython.utils.text import DollarFormatter

from ..core.errors import InvalidRequestError, LabError
from ..core.params import NAMES, Params, options
from ..core.types import ChatRequest, ChatResult, Message
from ..lab.default import default_lab
from . import figures
from .display import FORMATS, AnswerColumn, register_reprs
from .live import MAX_ANSWERS, Live, LiveJob, PlainView, RichView
from .options import param_values, with_param_arguments

if TYPE_CHECKING:
    from ..lab.lab import Lab

Outcome = ChatResult | LabError


class ChatUsageError(UsageError):
    """A `UsageError` that still fails the cell: shown as one line, reported to the kernel as an error.

    IPython prints a plain ``UsageError`` to stderr without reporting a cell error, so
    nbclient would carry on and ``pytest --nbval-lax`` would pass a broken notebook.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"UsageError: {self}"]


class ChatFailed(ChatUsageError):
    """Every call of a cell failed: the cell's one error output, one line per model naming cause and place.

    The cell's display then shows only text that did arrive, so nothing is said twice.
    """

    def __init__(self, lines: Sequence[tuple[str, str]]) -> None:
        self.lines = list(lines)
        super().__init__("; ".join(f"{label}: {cause}" for label, cause in self.lines))

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{label}\x1b[0m: {cause}" for label, cause in self.lines]


CONFIG_KEYS: tuple[str, ...] = ("model", "system", "cache", *NAMES)
#: the longest option line, and the most words it may have
MAX_LINE_CHARS = 2000
MAX_ARGUMENTS = 256
_DOLLARS = DollarFormatter()
_FIELD = re.compile(r"\{([A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[[^\[\]{}]+\])*)\}")
_ACCESSOR = re.compile(r"\.([A-Za-z_]\w*)|\[([^\[\]{}]+)\]")


# -- prompt fields ------------------------------------------------------------------------------------------------


def interpolate(template: str, namespace: Mapping[str, Any]) -> str:
    """Fill ``{name}``, ``{name.attr}`` and ``{name[key]}`` fields from *namespace*.

    Any other brace stays as written, so a JSON example such as ``{"a": 1}`` needs
    no escaping; ``{{`` and its matching ``}}`` stand for literal braces, as in
    `str.format`.  A field naming an undefined variable raises `UsageError`.
    """
    out: list[str] = []
    escaped: list[bool] = []  # one entry per open brace: was it written as "{{"?
    i = 0
    while i < len(template):
        char = template[i]
        if template.startswith("{{", i):
            out.append("{")
            escaped.append(True)
            i += 2
        elif char == "{":
            field = _FIELD.match(template, i)
            if field:
                out.append(_lookup(field.group(1), namespace))
                i = field.end()
            else:
                out.append("{")
                escaped.append(False)
                i += 1
        elif char == "}":
            width = 2 if escaped and escaped[-1] and template.startswith("}}", i) else 1
            if escaped:
                escaped.pop()
            out.append("}")
            i += width
        else:
            end = min((j for j in (template.find("{", i), template.find("}", i)) if j >= 0), default=len(template))
            out.append(template[i:end])
            i = end
    return "".join(out)


def _lookup(field: str, namespace: Mapping[str, Any]) -> str:
    name = re.match(r"[A-Za-z_]\w*", field).group()  # type: ignore[union-attr]
    if name not in namespace:
        raise ChatUsageError(
            f"prompt field {{{field}}}: {name!r} is not defined in the notebook "
            f"(define it, or write {{{{{field}}}}} for literal braces)"
        )
    value = namespace[name]
    for match in _ACCESSOR.finditer(field, len(name)):
        attr, key = match.groups()
        what = f"attribute {attr!r}" if attr is not None else f"key {_key(key)!r}"
        try:
            value = getattr(value, attr) if attr is not None else value[_key(key)]
        except (AttributeError, KeyError, IndexError, TypeError) as exc:
            raise ChatUsageError(f"prompt field {{{field}}}: no {what} on {type(value).__name__} ({exc})") from None
        except Exception as exc:  # a property or __getitem__ of the user's that raises
            raise ChatUsageError(
                f"prompt field {{{field}}}: reading {what} of {type(value).__name__} raised "
                f"{type(exc).__name__}: {exc}"
            ) from None
    try:
        return str(value)
    except Exception as exc:
        raise ChatUsageError(f"prompt field {{{field}}}: str() of {type(value).__name__} raised {exc!r}") from None


def _key(text: str) -> str | int:
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


# -- what one %%chat cell asks for --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CellPlan:
    prompt: str
    models: tuple[str | None, ...]
    n: int
    params: dict[str, Any]
    cache: bool | str
    fmt: str
    output: str | None
    stream: bool
    follow_up: bool = False

    @property
    def jobs(self) -> list[tuple[str | None, int]]:
        return [(model, sample) for model in self.models for sample in range(self.n)]

    def label(self, model: str | None, sample: int) -> str:
        name = model or "auto"
        return name if self.n == 1 else f"{name} #{sample + 1}"

    def shape(self, outcomes: Sequence[Outcome]) -> Any:
        """What ``-o VAR`` stores: one outcome, a list of samples, or a dict keyed by model."""
        if len(outcomes) == 1:
            return outcomes[0]
        if len(self.models) == 1:
            return list(outcomes)
        by_model = {
            model or "auto": list(outcomes[i * self.n : (i + 1) * self.n]) for i, model in enumerate(self.models)
        }
        return by_model if self.n > 1 else {model: results[0] for model, results in by_model.items()}


def _split_models(values: Sequence[str] | None) -> list[str]:
    items = [m.strip() for value in values or () for m in value.split(",")]
    return list(dict.fromkeys(m for m in items if m))


# -- parsing --------------------------------------------------------------------------------------------------------


def _parse_line(magic: Any, line: str, namespace: Mapping[str, Any]) -> Any:
    """Parse options shell-style (quotes grouped and removed: ``-s "Be brief."``), errors as `UsageError`.

    ``$name`` and ``{expression}`` are expanded from *namespace* first, as IPython does for every magic
    (the magics opt out of IPython's own expansion, whose pattern takes seconds on a few thousand
    characters): the line may have at most `MAX_LINE_CHARS` characters and `MAX_ARGUMENTS` words (argparse's
    work grows with the square of their number).  A long value belongs in a variable: ``-s $system``.
    """
    if len(line) > MAX_LINE_CHARS:
        raise ChatUsageError(
            f"the option line is {len(line)} characters; at most {MAX_LINE_CHARS} are read (put a long value in "
            "a variable and write -s $name)"
        )
    with contextlib.suppress(Exception):  # as IPython does: a line that does not expand is taken as written
        line = _DOLLARS.vformat(line, args=[], kwargs=dict(namespace))
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise ChatUsageError(f"cannot parse the options {_clipped(line.strip())}: {exc}") from None
    if len(argv) > MAX_ARGUMENTS:
        raise ChatUsageError(f"the option line has {len(argv)} words; at most {MAX_ARGUMENTS} are read")
    try:
        return magic.parser.parse_args(argv)
    except UsageError as exc:
        raise ChatUsageError(str(exc)) from None


def _clipped(text: str) -> str:
    return repr(text) if len(text) <= 80 else f"{text[:77]!r}..."


def _rich(shell: Any) -> bool:
    """Whether a front end renders HTML (Jupyter) or only text (terminal IPython, %doctest_mode)."""
    formatter = getattr(shell, "display_formatter", None)
    return formatter is not None and "text/html" in formatter.active_types


# -- the magics ---------------------------------------------------------------------------------------------------


@magics_class
class ChatMagics(Magics):
    """``%%chat``, ``%models``, ``%chat_stats`` and ``%chat_config`` over one Lab.

    ``defaults`` holds the session defaults set with ``%chat_config``.
    """

    def __init__(self, shell: Any = None, lab: Lab | None = None) -> None:
        super().__init__(shell)
        self._lab = lab
        self.defaults: dict[str, Any] = {}
        #: per model (``auto`` for the default), the last cell's conversation: what ``-c`` continues
        self.conversations: dict[str, list[Message]] = {}

    @property
    def _user(self) -> InteractiveShell:
        """The shell the magics run in (a magic is only ever called from one)."""
        if self.shell is None:
            raise UsageError("the opencode_lab magics need an IPython shell")
        return self.shell

    @property
    def lab(self) -> Lab:
        """The Lab the magics call: the one set here, else `opencode_lab.default_lab()`."""
        if self._lab is not None:
            return self._lab
        return default_lab()

    @lab.setter
    def lab(self, lab: Lab | None) -> None:
        self._lab = lab

    @no_var_expand
    @magic_arguments(name="%chat")
    @argument(
        "-m",
        "--model",
        action="append",
        metavar="MODEL",
        help="model id, alias or 'auto'; repeat the option or separate with commas to compare models",
    )
    @argument("-s", "--system", help="system prompt")
    @with_param_arguments(argument, taken=("-o",))  # -o is --output here; options are --option KEY=VALUE
    @argument(
        "-n",
        type=int,
        default=1,
        metavar="N",
        help=f"samples per model (each cached on its own); at most {MAX_ANSWERS} answers per cell in all",
    )
    @argument(
        "-c",
        "--continue",
        dest="follow_up",
        action="store_true",
        help="continue the previous cell's conversation with each model (its first sample), like llm -c",
    )
    @argument("--no-cache", action="store_true", help="ask the model even if the answer is cached")
    @argument(
        "--format",
        choices=FORMATS,
        default="markdown",
        help="how to show the answer: markdown (default), text, code or json",
    )
    @argument(
        "-o",
        "--output",
        metavar="VAR",
        help="store the result in VAR: a ChatResult for one answer, a list of samples, "
        "or a dict model -> result (a failed call stores its error)",
    )
    @argument("--no-stream", action="store_true", help="wait for the whole answer instead of streaming it")
    @cell_magic
    def chat(self, line: str, cell: str) -> None:
        """Ask the cell's text to one or more models and show the answers as they arrive.

        The cell body is the prompt.  {name}, {name.attr} and {name[key]} are filled
        from the notebook's variables; any other brace (a JSON example such as
        {"a": 1}) stays as written, and {{ ... }} stands for literal braces.
        Every model (and -n sample) is asked at once: one model streams its
        answer; several fill a side-by-side table as they stream.  A model
        still waiting shows how long and which attempt.  A failed call shows
        its cause, where, and the deployments tried; the cell fails only when
        every call failed, with one line per model naming cause and place.
        -c continues each model's conversation from the previous cell.  The
        cell's value (a ChatResult, a list or a dict, as for -o) is ``_``
        afterwards.  Defaults come from %chat_config.

        Example::

            %%chat -m local/smollm2-135m -t 0 --seed 1 -o answer
            In one sentence: what is {topic}?
        """
        plan = self._plan(_parse_line(self.chat, line, self._user.user_ns), cell)
        max_tokens = plan.params.get("max_tokens")
        columns = [AnswerColumn(plan.label(model, sample), max_tokens=max_tokens) for model, sample in plan.jobs]
        view = RichView(columns, plan.fmt) if _rich(self.shell) else PlainView(columns, plan.fmt)
        jobs = [self._job(plan, model, sample) for model, sample in plan.jobs]
        options = {k: v for k, v in plan.params.items() if k != "system"}
        live = Live(self.lab, jobs, view, {**options, "cache": plan.cache, "stream": plan.stream})
        outcomes: list[Outcome] | None = None
        try:
            outcomes = self.lab.block_on(live.run())
        finally:
            view.close(errors_below=outcomes is not None and all(isinstance(o, LabError) for o in outcomes))
        self._remember(jobs, outcomes)
        value = plan.shape(outcomes)
        if plan.output:
            self._user.user_ns[plan.output] = value
        self._user.displayhook.update_user_ns(value)  # ``_`` without showing the answers a second time
        if all(isinstance(o, LabError) for o in outcomes):
            raise ChatFailed([(c.label, c.cause) for c in columns])

    @no_var_expand
    @magic_arguments()
    @argument("filter", nargs="?", help="keep models whose id or alias contains this text")
    @argument("--tag", help="keep models with this tag (e.g. local, free, base)")
    @argument("--refresh", action="store_true", help="reload provider catalogs instead of using the cached copy")
    @line_magic
    def models(self, line: str = "") -> Any:
        """The model catalog as a DataFrame: cloud, region, pricing, context length, tags, aliases and health."""
        args = _parse_line(self.models, line, self._user.user_ns)
        return self.lab.models(args.filter, tag=args.tag, refresh=args.refresh)

    @no_var_expand
    @magic_arguments()
    @argument(
        "--by",
        default="model",
        metavar="COLUMN",
        help="group by this column (or several, comma-separated); default: model",
    )
    @argument("--plot", metavar="KIND", help="also draw a plot: overview, latency, cost, failures or tradeoff")
    @line_magic
    def chat_stats(self, line: str = "") -> Any:
        """Latency, cost and failure statistics of this session's calls (optionally with a plot)."""
        args = _parse_line(self.chat_stats, line, self._user.user_ns)
        by = _split_models([args.by])
        try:
            stats = self.lab.stats(by=by[0] if len(by) == 1 else by)
            if args.plot:  # the same chart plot() draws of the same calls
                fig = self.lab.plot(kind=args.plot)
                display(fig)
                figures.displayed(fig)
        except (LabError, KeyError, ValueError) as exc:
            raise ChatUsageError(f"%chat_stats: {exc}") from None
        return stats

    @no_var_expand
    @magic_arguments()
    @argument(
        "settings", nargs="*", metavar="KEY=VALUE", help=f"set a default ({', '.join(CONFIG_KEYS)}); KEY= clears it"
    )
    @argument("--reset", action="store_true", help="clear every default")
    @line_magic
    def chat_config(self, line: str = "") -> None:
        """Session defaults for later %%chat cells (options on a cell still win); no argument shows them.

        Example: %chat_config model=local/smollm2-135m temperature=0 seed=1 system="Answer briefly."
        """
        args = _parse_line(self.chat_config, line, self._user.user_ns)
        updates = dict(self._config_item(item) for item in args.settings)
        if args.reset:
            self.defaults.clear()
        for key, value in updates.items():
            if value is None:
                self.defaults.pop(key, None)
            else:
                self.defaults[key] = value
        if self.defaults:
            print("\n".join(f"{key} = {self.defaults[key]!r}" for key in CONFIG_KEYS if key in self.defaults))
        else:
            print(f"no %%chat defaults set (keys: {', '.join(CONFIG_KEYS)})")

    # -- helpers --------------------------------------------------------------------------------------------------

    def _plan(self, args: Any, cell: str) -> _CellPlan:
        """Validate everything a cell asks for before the first request is sent."""
        d = self.defaults
        if args.n < 1:
            raise ChatUsageError(f"-n must be at least 1 (samples per model), got {args.n}")
        if args.follow_up and not self.conversations:
            raise ChatUsageError("-c continues the previous %%chat cell's conversation, and there is none yet")
        if args.output is not None:
            self._check_output(args.output)
        if args.model is not None and not _split_models(args.model):
            raise ChatUsageError("-m needs a model id (or 'auto'); leave it out for the default models")
        prompt = interpolate(cell.strip(), self._user.user_ns)
        if not prompt.strip():
            raise ChatUsageError("%%chat needs a prompt: write it in the cell, below the %%chat line")
        given = {**d, **{k: v for k, v in {"system": args.system, **param_values(args)}.items() if v is not None}}
        params = {key: given[key] for key in ("system", *NAMES) if given.get(key) is not None}
        try:
            ChatRequest.build(prompt, **params)
        except InvalidRequestError as exc:
            raise ChatUsageError(str(exc)) from None
        models: list[str | None] = [*(_split_models(args.model) or _split_models([d.get("model") or ""]))] or [None]
        if len(models) * args.n > MAX_ANSWERS:
            raise ChatUsageError(
                f"-n {args.n} x {len(models)} model(s) = {len(models) * args.n} answers; one %%chat cell shows at "
                f"most {MAX_ANSWERS} side by side (compare() runs any number)"
            )
        for model in models:
            self._check_model(model)
        return _CellPlan(
            prompt,
            tuple(models),
            args.n,
            params,
            False if args.no_cache else d.get("cache", True),
            args.format,
            args.output,
            not args.no_stream,
            args.follow_up,
        )

    def _check_output(self, name: str) -> None:
        """``-o`` must name an ordinary variable: not a keyword, a dunder, a builtin, or a name IPython keeps
        in the namespace (``get_ipython``, ``In``, ``_``...), each of which later cells rely on."""
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ChatUsageError(f"-o needs a Python variable name, got {_clipped(name)}")
        hidden = getattr(self.shell, "user_ns_hidden", {})
        if (name.startswith("__") and name.endswith("__")) or name in hidden or hasattr(builtins, name):
            raise ChatUsageError(f"-o {name} would replace a name Python or IPython relies on; choose another name")

    def _check_model(self, model: str | None) -> None:
        try:
            self.lab.resolve(model)
        except LabError as exc:
            raise ChatUsageError(str(exc)) from None

    def _job(self, plan: _CellPlan, model: str | None, sample: int) -> LiveJob:
        """The messages to send: the new prompt, after this model's previous turns when continuing (``-c``);
        a new ``-s`` replaces the conversation's system prompt."""
        earlier = self.conversations.get(model or "auto", []) if plan.follow_up else []
        system = plan.params.get("system")
        if system is None:
            system = next((m.content for m in earlier if m.role == "system"), None)
        turns = [m for m in earlier if m.role != "system"]
        return LiveJob(model, sample, [*turns, Message("user", plan.prompt)], system)

    def _remember(self, jobs: Sequence[LiveJob], outcomes: Sequence[Outcome]) -> None:
        """Each model's conversation after this cell (its first sample's answer), for a later ``-c``."""
        for job, outcome in zip(jobs, outcomes, strict=True):
            if job.sample == 0 and isinstance(outcome, ChatResult):
                system = [Message("system", job.system)] if job.system is not None else []
                self.conversations[job.model or "auto"] = [*system, *job.messages, outcome.message]

    def _config_item(self, item: str) -> tuple[str, Any]:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ChatUsageError(f"%chat_config expects KEY=VALUE, got {item!r}")
        if key not in CONFIG_KEYS:
            raise ChatUsageError(f"unknown %chat_config key {key!r}; known keys: {', '.join(CONFIG_KEYS)}")
        raw = raw.strip()
        if raw == "" or (raw.lower() == "none" and key != "system"):
            return key, None
        try:
            value = _CONFIG_PARSERS[key](raw)
        except (ValueError, InvalidRequestError) as exc:
            raise ChatUsageError(f"%chat_config {key}={raw!r}: {exc}") from None
        if key == "model":
            for model in _split_models([value]):
                self._check_model(model)
        return key, value


def _request_value(key: str, cast: Callable[[str], Any]) -> Callable[[str], Any]:
    """Parse with *cast*, then let `Params.build` judge the range (one source of truth)."""

    def parse(raw: str) -> Any:
        return getattr(Params.build(**{key: cast(raw)}), key)

    return parse


def _cache_value(raw: str) -> bool | str:
    text = raw.lower()
    if text in ("true", "on", "yes", "1"):
        return True
    if text in ("false", "off", "no", "0"):
        return False
    if text == "refresh":
        return "refresh"
    raise ValueError("expected true, false or refresh")


_CONFIG_PARSERS: dict[str, Callable[[str], Any]] = {
    "model": str,
    "system": str,
    "cache": _cache_value,
    **{o.name: _request_value(o.name, o.parse) for o in options()},
}


# -- extension entry points ---------------------------------------------------------------------------------------


def _owner(fn: Any) -> str | None:
    """Who registered a magic: ``module.Class`` for a Magics method, ``module`` for a function."""
    if fn is None:
        return None
    owner = getattr(fn, "__self__", None)
    if owner is not None:
        return f"{type(owner).__module__}.{type(owner).__name__}"
    return getattr(fn, "__module__", None) or repr(fn)


def load_ipython_extension(ip: Any, lab: Lab | None = None) -> ChatMagics:
    """Register the magics; loading again keeps the existing ones (and their defaults).

    A magic name another extension already owns is left alone, with one warning
    line; ``%%oc_chat`` is always available as a second name for ``%%chat``.
    """
    ours = f"{ChatMagics.__module__}.{ChatMagics.__name__}"
    existing = ip.magics_manager.registry.get(ChatMagics.__name__)
    if existing is not None and _owner(existing.chat) == ours:
        if lab is not None:
            existing.lab = lab
        return existing
    register_reprs(ip)
    magics = ChatMagics(ip, lab=lab)
    magics.magics["cell"]["oc_chat"] = magics.chat
    taken = []
    for kind, table in magics.magics.items():
        for name in list(table):
            owner = _owner(ip.magics_manager.magics[kind].get(name))
            if owner is not None and owner != ours:
                taken.append(f"{'%%' if kind == 'cell' else '%'}{name} ({owner})")
                del table[name]
    if taken:
        print(f"opencode_lab: left {', '.join(taken)} in place; use %%oc_chat for opencode_lab's chat")
    ip.register_magics(magics)
    return magics


def unload_ipython_extension(ip: Any) -> None:
    """Remove the magics this extension registered (and only those)."""
    magics = ip.magics_manager.registry.pop(ChatMagics.__name__, None)
    if magics is None:
        return
    for kind, table in magics.magics.items():
        registered = ip.magics_manager.magics[kind]
        for name, fn in table.items():
            if registered.get(name) == fn:
                del registered[name]
