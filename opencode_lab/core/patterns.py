"""A JSON Schema ``pattern`` matched in time linear in the text, whatever the pattern.

Python's `re` backtracks: ``^(a+)+$`` against thirty ``a`` and a ``b`` runs for
minutes, holding the GIL, so no thread and no timeout can stop it.  A schema is
the user's, but the text is a model's answer, so a pattern is compiled here into
a small program and run as a Pike VM (Thompson's construction, the way RE2 does
it): every position of the text advances every live thread at once, so a match
costs at most ``len(text) * len(program)`` steps, each charged to the caller's
`Budget`.  Parsing is `re`'s own, so what a pattern means is what jsonschema
would have made of it; what no linear matcher can do (backreferences,
lookaround, atomic groups, possessive quantifiers, inline flags) is refused
when the schema is checked, before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from typing import Any

# re's own parser (private modules, without type stubs): patterns mean what they mean to jsonschema
sre: Any = import_module("re._constants")
_parser: Any = import_module("re._parser")

#: the largest program a pattern may compile to (``x{1000}`` is a thousand copies of ``x``)
MAX_PROGRAM = 20_000

_CHAR, _SPLIT, _JMP, _ASSERT, _MATCH = range(5)
Instruction = tuple[int, Any, Any]


class UnsupportedPattern(ValueError):
    """A pattern this matcher cannot run in linear time, or that is not a regular expression at all."""


class OverBudget(Exception):
    """A check spent its whole budget of steps: the caller reports the input as too costly to check."""


class Budget:
    """Steps a check may still take; `spend` raises `OverBudget` when they run out."""

    def __init__(self, steps: int) -> None:
        self.limit = steps
        self.left = steps

    def spend(self, steps: int = 1) -> None:
        self.left -= steps
        if self.left < 0:
            raise OverBudget(f"more than {self.limit} steps")

    @property
    def spent(self) -> int:
        return self.limit - self.left


@dataclass(frozen=True)
class Program:
    instructions: tuple[Instruction, ...]


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Program:
    """The program of *pattern*; `UnsupportedPattern` naming the construct when it has no linear match."""
    try:
        parsed = _parser.parse(pattern)
    except re.error as exc:
        raise UnsupportedPattern(f"pattern {pattern[:80]!r} is not a regular expression: {exc}") from None
    except RecursionError:
        raise UnsupportedPattern(f"pattern {pattern[:80]!r} nests too deeply") from None
    if parsed.state.flags & ~sre.SRE_FLAG_UNICODE:
        raise UnsupportedPattern(f"pattern {pattern[:80]!r} sets inline flags, which JSON Schema patterns do not have")
    out: list[Instruction] = []
    try:
        _emit(list(parsed), out, pattern)
    except RecursionError:
        raise UnsupportedPattern(f"pattern {pattern[:80]!r} nests too deeply") from None
    out.append((_MATCH, None, None))
    return Program(tuple(out))


def search(pattern: str, text: str, budget: Budget) -> bool:
    """Whether *pattern* matches anywhere in *text* (``re.search`` semantics), spending *budget* per step."""
    program = compile_pattern(pattern).instructions
    threads: list[int] = []
    seen: set[int] = set()
    for i in range(len(text) + 1):
        _add(program, 0, text, i, threads, seen, budget)
        ahead: list[int] = []
        ahead_seen: set[int] = set()
        budget.spend(len(threads))
        for pc in threads:
            kind, test, _ = program[pc]
            if kind == _MATCH:
                return True
            if i < len(text) and test(text[i]):
                _add(program, pc + 1, text, i + 1, ahead, ahead_seen, budget)
        threads, seen = ahead, ahead_seen
    return False


def _add(
    program: tuple[Instruction, ...], pc: int, text: str, at: int, threads: list[int], seen: set[int], budget: Budget
) -> None:
    """Follow the jumps, splits and anchors from *pc* at position *at*; the character tests and matches
    reached join *threads* (each instruction at most once per position: what keeps the work linear)."""
    stack = [pc]
    while stack:
        pc = stack.pop()
        if pc in seen:
            continue
        seen.add(pc)
        budget.spend()
        kind, a, b = program[pc]
        if kind == _JMP:
            stack.append(a)
        elif kind == _SPLIT:
            stack += (b, a)
        elif kind == _ASSERT:
            if a(text, at):
                stack.append(pc + 1)
        else:
            threads.append(pc)


def _emit(items: list[tuple[Any, Any]], out: list[Instruction], pattern: str) -> None:
    _check_size(out, pattern)
    for op, av in items:
        _check_size(out, pattern)
        if op is sre.LITERAL:
            out.append((_CHAR, chr(av).__eq__, None))
        elif op is sre.NOT_LITERAL:
            out.append((_CHAR, chr(av).__ne__, None))
        elif op is sre.ANY:
            out.append((_CHAR, "\n".__ne__, None))
        elif op is sre.IN:
            out.append((_CHAR, _char_class(av), None))
        elif op is sre.AT:
            out.append((_ASSERT, _ANCHORS[av], None))
        elif op is sre.SUBPATTERN:
            _group, add_flags, del_flags, inner = av
            if add_flags or del_flags:
                raise UnsupportedPattern(f"pattern {pattern[:80]!r} sets inline flags")
            _emit(list(inner), out, pattern)
        elif op is sre.BRANCH:
            _branch(av[1], out, pattern)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):  # greedy or lazy: the same language, and search only asks "any?"
            low, high, inner = av
            _repeat(low, high, inner, out, pattern)
        else:
            raise UnsupportedPattern(
                f"pattern {pattern[:80]!r} uses {_NONREGULAR.get(op, str(op).lower())}, which no matcher can run in "
                "time linear in the text"
            )


def _check_size(out: list[Instruction], pattern: str) -> None:
    if len(out) > MAX_PROGRAM:
        raise UnsupportedPattern(
            f"pattern {pattern[:80]!r} is too large to match in bounded time (over {MAX_PROGRAM} steps per character)"
        )


def _branch(alternatives: list[Any], out: list[Instruction], pattern: str) -> None:
    """``a|b|c``: a split to each alternative, every one jumping to the end."""
    jumps = []
    for index, alternative in enumerate(alternatives):
        last = index == len(alternatives) - 1
        split = len(out)
        if not last:
            out.append((_SPLIT, split + 1, None))  # the second target is patched below
        _emit(list(alternative), out, pattern)
        if not last:
            jumps.append(len(out))
            out.append((_JMP, None, None))
            out[split] = (_SPLIT, split + 1, len(out))
    for at in jumps:
        out[at] = (_JMP, len(out), None)


def _repeat(low: int, high: int, inner: Iterable[tuple[Any, Any]], out: list[Instruction], pattern: str) -> None:
    """``x{low,high}``: *low* copies, then either a loop (no upper bound) or ``high - low`` optional copies."""
    body = list(inner)
    for _ in range(low):
        _emit(body, out, pattern)
    if high == sre.MAXREPEAT:
        loop = len(out)
        out.append((_SPLIT, loop + 1, None))
        _emit(body, out, pattern)
        out.append((_JMP, loop, None))
        out[loop] = (_SPLIT, loop + 1, len(out))
        return
    splits = []
    for _ in range(high - low):
        splits.append(len(out))
        out.append((_SPLIT, len(out) + 1, None))
        _emit(body, out, pattern)
    for at in splits:
        out[at] = (_SPLIT, at + 1, len(out))


_NONREGULAR = {
    sre.GROUPREF: "a backreference",
    sre.GROUPREF_EXISTS: "a conditional group",
    sre.ASSERT: "a lookaround",
    sre.ASSERT_NOT: "a lookaround",
    sre.ATOMIC_GROUP: "an atomic group",
    sre.POSSESSIVE_REPEAT: "a possessive quantifier",
}


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


_CATEGORIES: dict[Any, Callable[[str], bool]] = {
    sre.CATEGORY_DIGIT: str.isdecimal,
    sre.CATEGORY_NOT_DIGIT: lambda c: not c.isdecimal(),
    sre.CATEGORY_SPACE: str.isspace,
    sre.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
    sre.CATEGORY_WORD: _word,
    sre.CATEGORY_NOT_WORD: lambda c: not _word(c),
    sre.CATEGORY_LINEBREAK: "\n".__eq__,
    sre.CATEGORY_NOT_LINEBREAK: "\n".__ne__,
}


def _char_class(items: list[tuple[Any, Any]]) -> Callable[[str], bool]:
    """A ``[...]`` class (or ``\\d``, ``\\w``, ``\\s``) as a test of one character."""
    negate = any(op is sre.NEGATE for op, _ in items)
    literals = frozenset(chr(av) for op, av in items if op is sre.LITERAL)
    ranges = tuple((chr(lo), chr(hi)) for op, (lo, hi) in ((op, av) for op, av in items if op is sre.RANGE))
    categories = tuple(_CATEGORIES[av] for op, av in items if op is sre.CATEGORY)

    def test(char: str) -> bool:
        found = (
            char in literals
            or any(lo <= char <= hi for lo, hi in ranges)
            or any(category(char) for category in categories)
        )
        return found is not negate

    return test


def _boundary(text: str, at: int) -> bool:
    before = at > 0 and _word(text[at - 1])
    after = at < len(text) and _word(text[at])
    return before is not after


_ANCHORS: dict[Any, Callable[[str, int], bool]] = {
    sre.AT_BEGINNING: lambda text, at: at == 0,
    sre.AT_BEGINNING_STRING: lambda text, at: at == 0,
    sre.AT_END: lambda text, at: at == len(text) or (at == len(text) - 1 and text[at] == "\n"),
    sre.AT_END_STRING: lambda text, at: at == len(text),
    sre.AT_BOUNDARY: _boundary,
    sre.AT_NON_BOUNDARY: lambda text, at: bool(text) and not _boundary(text, at),
}
