"""What an API function's keyword arguments are: names, types, defaults, choices and help.

The CLI's flags, the studio's form fields and the error messages all read them from
here, so the Python signature is the one place where an argument is declared. A
closed set of values is a ``Literal[...]`` type on the signature; the help text is
the ``Args:`` section of the docstring. A leaf module: it imports nothing of
deepcanvas but the error type, and no torch, so ``deepcanvas --help`` stays fast.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from .errors import DeepCanvasError


@dataclass(frozen=True)
class ApiParam:
    """One keyword-only argument of an API function."""

    name: str
    type: type  # int, float, bool or str (what a command line or a form field carries)
    default: Any
    optional: bool  # None is a valid value (the default comes from elsewhere, e.g. a preset)
    help: str
    choices: tuple | None  # the Literal's values, or None for an open value
    open_choice: bool = False  # Literal[...] | str: the choices, or other text (e.g. an image file)


def doc_args(func) -> dict[str, str]:
    """Parse the ``Args:`` section of a Google-style docstring into {name: help}."""
    doc = inspect.getdoc(func) or ""
    m = re.search(r"^Args:\n(.*?)(?:\n\S|\Z)", doc, re.S | re.M)
    out: dict[str, str] = {}
    if not m:
        return out
    name = None
    for line in m.group(1).splitlines():
        hit = re.match(r"^\s{4}(\w+):\s*(.*)$", line)
        if hit:
            name = hit.group(1)
            out[name] = hit.group(2).strip()
        elif name and line.strip():
            out[name] += " " + line.strip()
    return out


def _members(annotation) -> list:
    """The alternatives of a union (``int | None`` -> [int, NoneType]), or [annotation]."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return list(typing.get_args(annotation))
    return [annotation]


def choices_of(annotation) -> tuple | None:
    """``Literal['a', 'b']`` (alone, or with None or str) -> ('a', 'b'); anything else -> None."""
    lits = [a for a in _members(annotation) if typing.get_origin(a) is Literal]
    return tuple(v for a in lits for v in typing.get_args(a)) or None


def _open_choice(annotation) -> bool:
    """Literal[...] | str: a keyword from the list, or any other text (a file name)."""
    members = _members(annotation)
    return str in members and any(typing.get_origin(a) is Literal for a in members)


def base_type(annotation) -> type:
    """int | None -> int; Literal['a'] -> str; a string annotation is read by its first word."""
    if isinstance(annotation, str):
        for name, t in (("bool", bool), ("int", int), ("float", float)):
            if re.match(rf"^{name}\b", annotation.strip()):
                return t
        return str
    members = [a for a in _members(annotation) if a is not type(None)]
    if not members:
        return str
    first = members[0]
    if typing.get_origin(first) is Literal:
        return type(typing.get_args(first)[0])
    return first if first in (int, float, bool, str) else str


def _hints(func) -> dict:
    try:
        return typing.get_type_hints(func)
    except Exception:  # an annotation that does not evaluate: fall back to its text
        return {}


def api_params(func, skip=()) -> list[ApiParam]:
    """The keyword-only arguments of ``func`` (the API's options), in signature order."""
    helps = doc_args(func)
    hints = _hints(func)
    out = []
    for p in inspect.signature(func).parameters.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.name in skip:
            continue
        ann = hints.get(p.name, p.annotation)
        default = None if p.default is inspect.Parameter.empty else p.default
        optional = default is None or type(None) in _members(ann) or "None" in str(p.annotation)
        out.append(ApiParam(p.name, base_type(ann), default, optional, helps.get(p.name, ""), choices_of(ann),
                            _open_choice(ann)))
    return out


def check_choice(name: str, value, choices) -> str:
    """``value`` if it is one of ``choices`` (a Literal type or a tuple), else a one-line error listing them."""
    valid = typing.get_args(choices) if typing.get_origin(choices) is Literal else tuple(choices)
    if value not in valid:
        raise DeepCanvasError(f"unknown {name.replace('_', ' ')} {value!r}; valid: {', '.join(map(str, valid))}")
    return value
