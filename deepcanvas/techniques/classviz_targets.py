"""What a class visualization aims at: a classifier's classes and the channel or neuron terms of an objective.

Users name classes by ImageNet index or name (with suggestions for a misspelt one) and write extra terms as
"block10:37*2+neuron:block12:5"; both are read and checked here before any slow work (the studio's form
check calls the same functions), and :func:`target_objective` turns them into the objective to ascend.
"""

from __future__ import annotations

import difflib
import re

from ..errors import DeepCanvasError
from ..limits import check_number
from ..models.layered import probe_layers
from ..objectives import Channel, ClassScore, Neuron, Objective, Sum


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()


def require_classifier(info) -> None:
    """A one-line error unless the network has class scores and names (the CLI, the API and the studio)."""
    if info.defaults.get("class_layer") is None or info.classes is None:
        raise DeepCanvasError(
            f"model {info.name} is not a classifier; use efficientnet-lite0, or give an objective such as "
            f"'relu4_3:12' instead of classes")


def resolve_classes(classes, names: list[str] | None) -> list[int]:
    """ImageNet indices for ``classes``: an index, a name, a list of them, or a comma-separated string.

    Names are matched case-insensitively (underscores count as spaces). A few
    class names contain commas themselves; the longest run of comma-separated
    pieces that names a class wins. A name that matches nothing raises a
    :class:`DeepCanvasError` suggesting the closest names.
    """
    if classes is None:
        return []
    if isinstance(classes, (str, int)) or not hasattr(classes, "__iter__"):
        classes = [classes]
    n = len(names) if names is not None else None
    lookup: dict[str, list[int]] = {}
    for i, nm in enumerate(names or []):
        lookup.setdefault(_norm(nm), []).append(i)

    out: list[int] = []
    for item in classes:
        if isinstance(item, bool):
            raise DeepCanvasError(f"class must be an ImageNet index or name, got {item!r}")
        if isinstance(item, int) or (hasattr(item, "__index__") and not isinstance(item, str)):
            out.append(_check_index(int(item), n))
            continue
        if not isinstance(item, str):
            raise DeepCanvasError(f"class must be an ImageNet index or name, got {item!r}")
        pieces = [p.strip() for p in item.split(",")]
        i = 0
        while i < len(pieces):
            # Longest run of pieces that is a class name ("tights for gymnastics, a one-piece leotard, ...").
            for j in range(len(pieces), i, -1):
                joined = ", ".join(pieces[i:j])
                if _norm(joined) in lookup:
                    out.append(_unique(joined, lookup[_norm(joined)]))
                    i = j
                    break
            else:
                piece = pieces[i]
                i += 1
                if not piece:
                    continue
                if re.fullmatch(r"[+-]?\d+", piece):
                    out.append(_check_index(int(piece), n))
                    continue
                if names is None:
                    raise DeepCanvasError(
                        f"this model has no class names; give class indices instead of {piece!r}")
                close = difflib.get_close_matches(_norm(piece), list(lookup), n=5, cutoff=0.6)
                if not close:  # a word of a longer name ("retriever" -> "golden retriever", ...)
                    close = [k for k in lookup if _norm(piece) in k][:5]
                hint = f"; did you mean {', '.join(repr(names[lookup[c][0]]) for c in close)}?" if close else \
                    "; give an index 0..999 or a name from the ImageNet class list"
                raise DeepCanvasError(f"unknown class {piece!r}{hint}")
    return out


def _check_index(i: int, n: int | None) -> int:
    if n is not None and not 0 <= i < n:
        raise DeepCanvasError(f"class index {i} is out of range 0..{n - 1}")
    if i < 0:
        raise DeepCanvasError(f"class index {i} must not be negative")
    return i


def _unique(name: str, indices: list[int]) -> int:
    if len(indices) > 1:
        raise DeepCanvasError(
            f"class name {name!r} is ambiguous (indices {', '.join(map(str, indices))}); give the index instead")
    return indices[0]


_TERM = re.compile(r"^(?:(?P<pre>[-+]?[\d.eE+-]+)\*)?(?P<neuron>neuron:)?(?P<layer>\w[\w.]*)"
                   r":(?P<ch>\d+)(?:\*(?P<post>[-+]?[\d.eE+-]+))?$")


def parse_objective(spec: str) -> list[tuple[str, str, int, float]]:
    """'block10:37*2+neuron:block4:3' -> [('channel', 'block10', 37, 2.0), ('neuron', 'block4', 3, 1.0)]."""
    terms = []
    for raw in str(spec).replace(" ", "").split("+"):
        if not raw:
            continue
        m = _TERM.match(raw)
        if not m:
            raise DeepCanvasError(
                f"cannot read objective term {raw!r}; write LAYER:CHANNEL, neuron:LAYER:CHANNEL, "
                f"optionally *WEIGHT, joined by + (e.g. 'block10:37*2+neuron:block12:5')")
        w = 1.0
        for k in ("pre", "post"):
            if m.group(k) is not None:
                w *= check_number(f"weight in objective term {raw!r}", m.group(k))
        terms.append(("neuron" if m.group("neuron") else "channel", m.group("layer"), int(m.group("ch")), w))
    if not terms:
        raise DeepCanvasError(f"empty objective {spec!r}")
    return terms


def check_objective_terms(net, terms, size: int) -> None:
    """Channel and layer checks on a small dry run, before any slow work."""
    layers = sorted({t[1] for t in terms})
    net.check_layers(layers)
    shapes, _ = probe_layers(net, layers, size=max(32, min(size, 64)))
    for kind, layer, ch, _ in terms:
        shape = shapes[layer]
        if not 0 <= ch < shape[0]:
            raise DeepCanvasError(
                f"channel {ch} is out of range for layer {layer!r}, which has channels 0..{shape[0] - 1}")
        if kind == "neuron" and len(shape) != 3:
            raise DeepCanvasError(f"neuron objectives need a spatial layer; {layer!r} has no positions")


def target_objective(indices: list[int], terms, class_layer: str | None) -> Objective:
    """Item ``i`` of the batch ascends class ``indices[i]``, and every item the objective ``terms``.

    One item (no batch index) when there is at most one class.
    """
    batch = max(1, len(indices))
    objective = Sum([])
    for i in range(batch):
        b = i if batch > 1 else None
        if indices:
            objective = objective + ClassScore(indices[i], layer=class_layer, batch=b)
        for kind, layer, ch, w in terms:
            term = Channel(layer, ch, batch=b) if kind == "channel" else Neuron(layer, ch, batch=b)
            objective = objective + w * term
    return objective
