"""Mixed precision: which precision a device runs in, the autocast context, and fp16's loss scaling."""

from __future__ import annotations

import contextlib
import functools

import torch

from .errors import DeepCanvasError


#: /proc/cpuinfo flags of x86 CPUs that compute bf16 dot products natively (AVX512-BF16, AMX-BF16).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """What this CPU says it can do: torch's own probe (CPUID), and /proc/cpuinfo's flags on Linux."""
    flags: set[str] = set()
    try:
        flags |= {k for k, v in torch.cpu.get_capabilities().items() if v is True}
    except (AttributeError, RuntimeError):  # an older torch: its probes one by one
        for name, probe in (("avx512_bf16", "_is_avx512_bf16_supported"), ("amx_tile", "_is_amx_tile_supported")):
            if getattr(torch.cpu, probe, lambda: False)():
                flags.add(name)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags |= set(line.split(":", 1)[1].split())
                    break
    except OSError:  # not Linux (macOS: Apple's CPUs, which auto leaves in fp32)
        pass
    return frozenset(flags)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16), where bf16 autocast about doubles the
    network's speed; elsewhere (older x86, Apple's CPUs) torch emulates it and it is slower than fp32."""
    return any(flag in _cpu_flags() for flag in BF16_CPU_FLAGS)


def resolve_precision(device: torch.device, precision: str) -> str:
    """'auto': bf16 on CUDA cards that have it, fp16 on older ones (Turing, e.g. a T4), bf16 on CPUs with native
    bf16 (:func:`cpu_has_native_bf16`), fp32 elsewhere."""
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if device.type == "cpu" and cpu_has_native_bf16():
            return "bf16"
        return "fp32"
    if precision not in ("fp32", "bf16", "fp16"):
        raise DeepCanvasError(f"unknown precision {precision!r}; valid: auto, fp32, bf16, fp16")
    return precision


def autocast_for(device: torch.device, precision: str):
    """Mixed precision for the network's convolutions; objectives cast to fp32 themselves (they run outside
    this context, on the activations), and the parameters and the optimizer's state stay fp32."""
    precision = resolve_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


class LossScale:
    """Dynamic loss scaling for fp16, whose small gradients underflow to zero.

    With the default losses at 256 px, 15% of the pixel gradients came out exactly 0 in fp16 (none
    with the loss scaled by 4096). The backward pass runs on loss x scale and the gradients are
    divided by it after; on an overflow the scale halves and the evaluation is redone, after
    ``growth_interval`` clean ones it doubles. torch.amp.GradScaler does this for optimizers it
    steps itself, which L-BFGS's closure rules out. bf16 has fp32's range and needs none of it.
    """

    def __init__(self, enabled: bool, init: float = 2.0 ** 16, growth_interval: int = 200):
        self.enabled, self.value, self.growth_interval = enabled, (init if enabled else 1.0), growth_interval
        self._clean = 0

    def unscale(self, params: list[torch.Tensor]) -> bool:
        """Divide the gradients by the scale; False (gradients cleared, scale halved) if they overflowed."""
        if not self.enabled:
            return True
        for p in params:
            if p.grad is not None:
                p.grad.div_(self.value)
        if all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in params):
            self._clean += 1
            if self._clean >= self.growth_interval:
                self.value, self._clean = min(self.value * 2, 2.0 ** 24), 0
            return True
        if self.value <= 1:
            raise DeepCanvasError("the gradients overflowed in fp16; use --precision bf16 or fp32")
        self.value, self._clean = self.value / 2, 0
        for p in params:
            p.grad = None
        return False
