"""The techniques deepcanvas offers, one record each: what the CLI, the studio, the demo and
``import deepcanvas`` list.

A record names its module and functions rather than importing them, so reading it costs no torch:
``deepcanvas --help`` lists every command instantly, and a technique's module is imported only when
it runs or shows its own flags. The flags and form fields themselves are not listed here: they come
from the ``*_steps`` function's signature (:mod:`deepcanvas.signature`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["image", "video", "zoom"]  # what a run writes: image file(s), a video, a zoom sequence


@dataclass(frozen=True)
class Argument:
    """An image (or names) a technique takes: a positional argument of its functions, or, with ``keyword``,
    an image-valued keyword that only the studio lists as an input (the CLI takes it as a flag)."""

    name: str
    help: str = ""  # the CLI's help for a positional
    nargs: str | None = None  # the CLI's argparse nargs: None for one value, "*" or "+"
    label: str = ""  # the studio's label
    kind: Literal["image", "classes", "mask"] = "image"  # mask: regions painted on the page, not picked
    multiple: bool = False
    required: bool = True
    default: tuple[str, ...] = ()  # the studio's preselection ("bundled:NAME" is a bundled image)
    keyword: bool = False


@dataclass(frozen=True)
class Demo:
    """How ``deepcanvas demo`` runs a technique: on bundled inputs, with settings quick on a CPU."""

    order: int  # the demo runs the quickest first
    inputs: tuple  # the positional arguments; "bundled:NAME" is a bundled image, a tuple a list of them
    settings: dict = field(default_factory=dict, hash=False)  # keyword arguments; read, never changed
    output: str = ""  # the file written in the demo's folder
    sized: bool = False  # whether the demo's --size replaces settings["size"]


@dataclass(frozen=True)
class Technique:
    """One technique: its command, where its code lives, its arguments, and how the studio and demo show it."""

    command: str  # the CLI's subcommand, also the studio's and the demo's name for it
    help: str  # one line, for ``deepcanvas --help``
    module: str  # under deepcanvas.techniques
    steps: str  # the generator of Progress; the CLI's flags and the studio's fields come from its signature
    function: str  # the plain function: runs it, returns the result
    kind: Kind
    output: str  # the CLI's default output
    arguments: tuple[Argument, ...] = ()
    title: str = ""  # the studio's tab; a technique without one is not in the studio
    blurb: str = ""
    demo: Demo | None = None

    @property
    def name(self) -> str:
        return self.command

    @property
    def import_path(self) -> str:
        return f"deepcanvas.techniques.{self.module}"

    @property
    def positionals(self) -> tuple[Argument, ...]:
        return tuple(a for a in self.arguments if not a.keyword)

    @property
    def inputs(self) -> tuple[Argument, ...]:
        """The studio's inputs: the positionals, then the image-valued keywords."""
        return self.arguments


_CLIP = Argument("input", "video file (mp4, mov, webm, gif...) or a folder or glob of frames")

TECHNIQUES: tuple[Technique, ...] = (
    Technique(
        "style", "style transfer: paint CONTENT in the style of STYLE(s)", "style", "style_transfer_steps",
        "style_transfer", "image", "styled.png",
        (Argument("content", "content image (with --batch: the first style image)", label="Content image",
                  default=("bundled:chelsea.jpg",)),
         Argument("styles", "style image(s)", "*", "Style image(s)", multiple=True, default=("bundled:swirls.jpg",)),
         # regions (issue 11): painted on the page, uploaded as PNGs
         Argument("mask", label="Mask", kind="mask", required=False, keyword=True),
         Argument("style_masks", label="Style regions", kind="mask", multiple=True, required=False, keyword=True),
         Argument("content_map", label="Content map", kind="mask", required=False, keyword=True),
         Argument("style_map", label="Style map", kind="mask", multiple=True, required=False, keyword=True)),
        "Style transfer", "Paint a photo in the style of one or more paintings.",
        Demo(3, ("bundled:chelsea.jpg", ("bundled:swirls.jpg",)), {"size": 320}, "style.png", sized=True),
    ),
    Technique(
        "dream", "DeepDream: amplify what a layer sees in IMAGE", "dream", "dream_steps", "dream", "image",
        "dream.png",
        (Argument("image", "input photo", label="Photo", default=("bundled:coffee.jpg",)),
         Argument("guide", label="Guide image (optional)", required=False, keyword=True),
         Argument("mask", label="Mask", kind="mask", required=False, keyword=True)),
        "DeepDream", "Amplify what a layer of the network sees in a photo.",
        Demo(1, ("bundled:coffee.jpg",), {"size": 384}, "dream.png", sized=True),
    ),
    Technique(
        "classviz", "class visualization: an image the classifier scores as CLASS", "classviz",
        "visualize_class_steps", "visualize_class", "image", "class.png",
        (Argument("classes", "ImageNet class index or name (several: one image each; none with --objective)", "*",
                  "Classes", kind="classes", multiple=True, required=False, default=("goldfinch",)),),
        "Class visualization", "Paint an image the classifier scores as the chosen classes.",
        # a monarch butterfly reads well this early; a goldfinch did not
        Demo(2, ("monarch butterfly",), {"size": 192, "iterations": 320}, "classviz_monarch.png"),
    ),
    Technique(
        "invert", "feature inversion: rebuild IMAGE from one layer's features", "invert", "invert_steps", "invert",
        "image", "inverted.png",
        (Argument("image", "input photo", label="Photo", default=("bundled:astronaut.jpg",)),),
        "Feature inversion", "Rebuild a photo from one layer's features alone.",
        # several layers: the demo writes them as one contact sheet beside the photo
        Demo(4, ("bundled:astronaut.jpg",), {"layers": "relu1_2,relu2_2,relu3_3,relu5_1", "size": 128,
                                             "iterations": 100}, "invert_contact_sheet.png"),
    ),
    Technique(
        "atlas", "layer atlas: what each layer's channels respond to, one sheet per network", "atlas", "atlas_steps",
        "atlas", "image", "atlas.png",
        (Argument("photo", label="Photo (optional: the channels that fire most on it, beside their patches)",
                  required=False, keyword=True),),
        "Layer atlas", "What each layer's channels respond to: one row of pictures per layer.",
    ),
    Technique(
        "dream-zoom", "DeepDream zoom: N frames, each dreamt on a slightly zoomed previous one; PNG frames, a GIF "
                      "and an MP4", "zoom", "dream_zoom_steps", "dream_zoom", "zoom", "zoom/",
        (Argument("image", "input photo"),),
    ),
    Technique(
        "style-video", "style a video clip (or a folder of frames), frame by frame with temporal consistency",
        "style_video", "style_video_steps", "style_video", "video", "styled.mp4",
        (_CLIP, Argument("styles", "style image(s)", "+")),
    ),
    Technique(
        "dream-video", "DeepDream a video clip, each frame seeded by the previous dream moved by the optical flow",
        "dream_video", "dream_video_steps", "dream_video", "video", "dream.mp4",
        (_CLIP,),
    ),
)

#: Public names of ``deepcanvas`` that are not a technique's two functions: name -> module defining it.
OTHER_API = {
    "contact_sheet": "techniques.invert", "style_print": "techniques.style_print",
    "load_model": "models", "LayeredNet": "models",
    "Interrupted": "progress", "Progress": "progress", "drive": "render",
    "Stage": "render", "Renderer": "render",
}


def get(command: str) -> Technique | None:
    return next((t for t in TECHNIQUES if t.command == command), None)


def in_studio() -> tuple[Technique, ...]:
    return tuple(t for t in TECHNIQUES if t.title)


def in_demo() -> tuple[Technique, ...]:
    """The techniques the demo runs, in the order it runs them."""
    return tuple(sorted((t for t in TECHNIQUES if t.demo), key=lambda t: t.demo.order))


def api() -> dict[str, str]:
    """Every public function and class of ``deepcanvas``: name -> module (relative to the package) defining it."""
    names = {n: f"techniques.{t.module}" for t in TECHNIQUES for n in (t.function, t.steps)}
    return names | OTHER_API
