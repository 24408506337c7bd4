"""Option records: each family of options declared once, as a frozen dataclass.

A field carries its type (``Literal[...]`` for a closed set of values), its default and a
one-line help (``metadata["help"]``); ``metadata["number"]`` says how a number is checked
(:func:`deepcanvas.limits.check_number`'s keywords, the upper limits coming from
:mod:`deepcanvas.limits`). A record is checked once, when it is built, so the code that
receives one trusts it. :func:`deepcanvas.signature.flat_options` turns the records of a
technique into its keyword arguments, which the CLI's flags and the studio's fields are
read from. Free of torch, so that ``deepcanvas --help`` stays fast.

Every technique takes :class:`NetworkOptions` and :class:`RunOptions` (``common``); the families:
``style`` (:class:`StillOptions`, :class:`StyleOptions`), ``dream`` (:class:`DreamOptions`: dream,
dream zoom, dream video), ``video`` (:class:`ClipOptions`: style video, dream video), ``classviz``,
``invert`` and ``atlas``.
"""

from .atlas import AtlasOptions, AtlasRunOptions
from .classviz import ClassvizOptions
from .common import NetworkOptions, Pooling, Precision, RunOptions, option
from .dream import DreamOptions
from .invert import InvertOptions
from .prints import PrintOptions, parse_print_size
from .style import INITS, Colors, Init, Optimizer, StillOptions, StyleOptions
from .video import ClipOptions, FlowPreset

__all__ = ["AtlasOptions", "AtlasRunOptions", "ClassvizOptions", "ClipOptions", "Colors", "DreamOptions", "FlowPreset",
           "INITS", "Init", "InvertOptions", "NetworkOptions", "Optimizer", "Pooling", "Precision", "PrintOptions", "RunOptions",
           "StillOptions", "StyleOptions", "option", "parse_print_size"]
