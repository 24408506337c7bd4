"""What an API function's keyword arguments are: names, types, defaults, choices and help.

The CLI's flags, the studio's form fields and the error messages all read them from
here, so the Python signature is the one place where an argument is declared. A
closed set of values is a ``Literal[...]`` type on the signature; the help text is
the ``Args:`` section of the docstring. Options shared by several functions are
declared once as fields of an option record (:mod:`deepcanvas.options`);
:func:`flat_options` flattens the records into keyword arguments, so the signature
(and everything read from it) shows them as if written out. A leaf module: it imports
nothing of deepcanvas but the error type, and no torch, so ``deepcanvas --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from .errors import DeepCanvasError
from .limits import check_number


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


def open_choice(annotation) -> bool:
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
                            open_choice(ann)))
    return out


def check_choice(name: str, value, choices) -> str:
    """``value`` if it is one of ``choices`` (a Literal type or a tuple), else a one-line error listing them."""
    valid = typing.get_args(choices) if typing.get_origin(choices) is Literal else tuple(choices)
    if value not in valid:
        raise DeepCanvasError(f"unknown {name.replace('_', ' ')} {value!r}; valid: {', '.join(map(str, valid))}")
    return value


# -- option records ----------------------------------------------------------------------------------------
def record_fields(record: type) -> list[tuple[dataclasses.Field, Any]]:
    """(field, its evaluated type) for each field of an option record (a dataclass), in order."""
    hints = typing.get_type_hints(record)
    return [(f, hints[f.name]) for f in dataclasses.fields(record)]


def check_record(record) -> None:
    """Check every field of a record as it is built: ``Literal`` choices, and numbers by the ``number``
    entry of the field's metadata (:func:`deepcanvas.errors.check_number`'s keywords), which may also
    normalise the value (a whole number to int). None is always accepted (the default comes from elsewhere)."""
    for f, hint in record_fields(type(record)):
        value = getattr(record, f.name)
        if value is None:
            continue
        number = f.metadata.get("number")
        if number is not None:
            object.__setattr__(record, f.name, check_number(f.name, value, **number))
        choices = choices_of(hint)
        if choices and not open_choice(hint):
            check_choice(f.name, value, choices)


def build_records(records: dict[str, type], keywords: dict, where: str, omit=()) -> dict[str, Any]:
    """{parameter name: record} from flat keywords, each record built (and so checked) once.

    An unknown keyword, or one of the fields in ``omit`` (which the function does not take), is a
    TypeError, as Python's own for a function that lacks it.
    """
    names = {f.name: key for key, cls in records.items() for f in dataclasses.fields(cls) if f.name not in omit}
    for k in keywords:
        if k not in names:
            raise TypeError(f"{where}() got an unexpected keyword argument {k!r}")
    split: dict[str, dict] = {key: {} for key in records}
    for k, v in keywords.items():
        split[names[k]][k] = v
    return {key: cls(**split[key]) for key, cls in records.items()}


def flat_options(defaults: dict[str, Any] | None = None, helps: dict[str, str] | None = None, omit=(),
                 **records: type):
    """Decorator: the parameters named in ``records`` (each an option record) become one keyword per field.

    For this function, ``defaults`` overrides a field's default (a video's seed is 0, a still's None),
    ``helps`` a field's help line (what a shared field means here), and the fields in ``omit`` are left
    out (a network choice the technique's networks lack): their records keep the default.

    ``@flat_options(options=StyleOptions)`` on ``def f(content, *, options)`` gives ``f(content, size=...,
    ...)``: the call's keywords are split into the records, which are built (and checked) before ``f`` runs.
    The signature, the annotations and the docstring's ``Args:`` section are rewritten to show the fields
    in the record parameters' places, so :func:`api_params` (the CLI, the studio) and ``help()`` see them.
    """
    def wrap(func):
        sig = inspect.signature(func)
        documented = doc_args(func)
        params, annotations, lines = [], {}, []
        for p in sig.parameters.values():
            if p.name not in records:
                params.append(p)
                if p.name in func.__annotations__:
                    annotations[p.name] = func.__annotations__[p.name]
                lines.append((p.name, documented.get(p.name, "")))
                continue
            for f, hint in record_fields(records[p.name]):
                if f.name in omit:
                    continue
                params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                                default=(defaults or {}).get(f.name, f.default), annotation=hint))
                annotations[f.name] = hint
                lines.append((f.name, (helps or {}).get(f.name, f.metadata.get("help", ""))))
        if "return" in func.__annotations__:
            annotations["return"] = func.__annotations__["return"]
        names = [n for n, _ in lines]
        if len(set(names)) != len(names):
            raise TypeError(f"{func.__name__}: two options share a name")
        fields = {f.name for cls in records.values() for f in dataclasses.fields(cls)}
        if (set(defaults or {}) | set(helps or {})) - set(names) or set(omit) - fields:
            raise TypeError(f"{func.__name__}: defaults, helps or omit name an option it lacks")
        own = [p.name for p in sig.parameters.values() if p.name not in records]

        @functools.wraps(func)
        def wrapper(*args, **keywords):
            keywords = {**(defaults or {}), **keywords}
            mine = {k: keywords.pop(k) for k in list(keywords) if k in own}
            inspect.Signature([p for p in sig.parameters.values() if p.name in own]).bind(*args, **mine)
            return func(*args, **mine, **build_records(records, keywords, func.__name__, omit))

        wrapper.__signature__ = sig.replace(parameters=params)
        wrapper.__annotations__ = annotations
        wrapper.__doc__ = _with_args(inspect.getdoc(func) or "", lines)
        wrapper.records = dict(records)
        return wrapper

    return wrap


def _with_args(doc: str, lines: list[tuple[str, str]]) -> str:
    """``doc`` with its ``Args:`` section (added at the end if it has none) listing ``lines``."""
    text = "\n".join(textwrap.fill(f"{name}: {help_}", width=112, initial_indent="    ", subsequent_indent="        ",
                                   break_on_hyphens=False, break_long_words=False) for name, help_ in lines)
    section = "Args:\n" + text
    m = re.search(r"^Args:\n(.*?)(?=\n\S|\Z)", doc, re.S | re.M)
    if m is None:
        return doc.rstrip() + "\n\n" + section
    return doc[:m.start()] + section + doc[m.end():]
