"""Command-line options generated from the one declaration of request parameters.

The CLI (`argparse`) and ``%%chat`` (IPython's ``magic_arguments``, argparse
underneath) take the same ``--temperature``, ``--max-tokens``, ``--seed``,
``--top-p``, ``--stop``, ``--reasoning-effort``, ``--option KEY=VALUE``... options, each
derived from `opencode_lab.core.params`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection
from typing import Any

from ..core.errors import InvalidRequestError
from ..core.params import options


def param_arguments(taken: Collection[str] = ()) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """``(flags, keyword arguments)`` for ``add_argument`` per request parameter; a short flag in *taken*
    (``%%chat``'s ``-o`` is ``--output``) is left out, the long one stays."""
    out = []
    for option in options():
        short = (option.short,) if option.short and option.short not in taken else ()
        flags = (*short, option.flag)
        kwargs: dict[str, Any] = {"dest": option.name, "help": option.help, "metavar": option.name.upper()}
        if option.repeated:
            kwargs["action"] = "append"
        else:
            kwargs["type"] = _explained(option.parse)
        out.append((flags, kwargs))
    return out


def _explained(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """*parse* whose `InvalidRequestError` argparse shows as it is (it shows a bare ``invalid value`` for a
    ValueError): ``--schema @file`` then says why the file was refused, never what it holds."""

    def parse_value(raw: str) -> Any:
        try:
            return parse(raw)
        except InvalidRequestError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse_value.__name__ = getattr(parse, "__name__", "value")
    return parse_value


def add_param_arguments(parser: argparse.ArgumentParser) -> None:
    for flags, kwargs in param_arguments():
        parser.add_argument(*flags, **kwargs)


def with_param_arguments(
    argument: Callable[..., Callable[[Any], Any]], taken: Collection[str] = ()
) -> Callable[[Any], Any]:
    """A decorator adding every parameter through IPython's ``@argument`` (so ``%%chat?`` lists them)."""

    def decorate(fn: Any) -> Any:
        for flags, kwargs in reversed(param_arguments(taken)):
            fn = argument(*flags, **kwargs)(fn)
        return fn

    return decorate


def param_values(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters given on the command line (unset ones left out)."""
    return {o.name: getattr(args, o.name) for o in options() if getattr(args, o.name, None) is not None}
