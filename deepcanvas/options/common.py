"""The option records every technique shares: the network it runs on, and what makes a run repeatable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..signature import check_record

Pooling = Literal["max", "avg"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


def option(default: Any, help: str, **number) -> Any:
    """A record field: its default, its help line, and (for a number) check_number's keywords."""
    return field(default=default, metadata={"help": help, "number": number or None})


@dataclass(frozen=True)
class NetworkOptions:
    """The network a technique runs on, and where and how precisely it computes.

    A technique whose networks have no pooling to choose leaves ``pooling`` out of its keywords
    (``flat_options(omit=...)``); its record then keeps the default.
    """

    # A registered name, a spec, or a network object (any torch.nn.Module; typed `object` to keep torch out).
    model: str | object = option("vgg16", "network from `deepcanvas models`, your own as path/to/file.py:function, "
                                          "timm:NAME or torchvision:NAME, or any torch.nn.Module object.")
    weights: str | None = option(None, "local checkpoint (.pth, .pt, .safetensors) for the model's architecture.")
    mean: str | None = option(None, "your model's input mean per RGB channel, e.g. 0.485,0.456,0.406 "
                                    "(default: its package's, else ImageNet's).")
    std: str | None = option(None, "your model's input std per RGB channel, e.g. 0.229,0.224,0.225.")
    pooling: Pooling = option("max", "max or avg.")
    device: str = option("auto", "auto, cpu, cuda or mps.")
    precision: Precision = option("auto", "auto (bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere), fp32, "
                                           "bf16 or fp16.")

    def __post_init__(self):
        check_record(self)


@dataclass(frozen=True)
class RunOptions:
    """What makes a run repeatable (None: a fresh random seed)."""

    seed: int | None = option(None, "random seed for reproducible results.", integer=True, minimum=0)

    def __post_init__(self):
        check_record(self)

