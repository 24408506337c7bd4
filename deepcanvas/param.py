"""Image parameterisations: what the optimizer actually changes.

Each one holds trainable tensors and maps them to an RGB image batch in [0, 1]
(shape (N, 3, H, W)). Style transfer, DeepDream and inversion change pixels;
class visualization works far better in a decorrelated Fourier space (Olah et
al., "Feature Visualization", 2017), so both live here.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class Param:
    def parameters(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def image(self) -> torch.Tensor:
        raise NotImplementedError

    def post_step(self) -> None:
        """Called after each optimizer step (e.g. to clip pixels)."""

    @property
    def shape(self) -> tuple[int, int, int, int]:
        with torch.no_grad():
            return tuple(self.image().shape)


class PixelParam(Param):
    """The pixels themselves, clipped to [0, 1] after every step.

    ``clip=False`` leaves them free (clipped only on output): L-BFGS builds its
    curvature model from the steps it took, and clipping behind its back
    corrupts that model.
    """

    def __init__(self, init: torch.Tensor, clip: bool = True):
        self.pixels = init.detach().clone().clamp_(0, 1).requires_grad_(True)
        self.clip = clip

    def parameters(self):
        return [self.pixels]

    def image(self):
        return self.pixels

    @torch.no_grad()
    def post_step(self):
        if self.clip:
            self.pixels.clamp_(0, 1)

    @torch.no_grad()
    def set_image(self, img: torch.Tensor):
        self.pixels.copy_(img.clamp(0, 1))


# Square root of the colour correlation matrix of ImageNet photos (from lucid):
# optimising in these decorrelated axes keeps colours natural.
_COLOR_SVD_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
COLOR_DECORRELATION = _COLOR_SVD_SQRT / np.max(np.linalg.norm(_COLOR_SVD_SQRT, axis=0))


class FourierParam(Param):
    """An image as a scaled 2-D spectrum in decorrelated colour space, squashed by a sigmoid.

    Scaling each frequency by 1/f whitens the gradient, so the optimizer does not
    pour everything into high frequencies (the noisy look of pixel ascent).
    """

    def __init__(self, batch: int, height: int, width: int, *, sd: float = 0.01, decay_power: float = 1.0,
                 decorrelate: bool = True, device="cpu", generator: torch.Generator | None = None):
        self.h, self.w = height, width
        fy = np.fft.fftfreq(height)[:, None]
        fx = np.fft.rfftfreq(width)[None, :]
        freqs = np.sqrt(fx * fx + fy * fy)
        scale = 1.0 / np.maximum(freqs, 1.0 / max(width, height)) ** decay_power
        self.scale = torch.tensor(scale, dtype=torch.float32, device=device)[None, None, :, :, None]
        spec = torch.randn((batch, 3) + freqs.shape + (2,), generator=generator) * sd
        self.spectrum = spec.to(device).requires_grad_(True)
        self.decorrelate = decorrelate
        self.color = torch.tensor(COLOR_DECORRELATION.T, device=device)

    def parameters(self):
        return [self.spectrum]

    def image(self):
        spec = torch.view_as_complex(self.scale * self.spectrum)
        img = torch.fft.irfftn(spec, s=(self.h, self.w), norm="ortho") / 4.0  # lucid's "magic" 4: less saturation
        if self.decorrelate:
            img = torch.einsum("nchw,cd->ndhw", img, self.color)
        return torch.sigmoid(img)


def resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize that keeps values in [0, 1] and is antialiased when shrinking."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return F.interpolate(img, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
