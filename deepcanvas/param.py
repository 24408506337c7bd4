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
COLOR_CORRELATION_SVD_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]],
                                      dtype=np.float32)
COLOR_DECORRELATION = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))


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


class PyramidParam(Param):
    """An image as a sum of upsampled levels, 1/1 .. 1/2^(levels-1) of its size, in decorrelated colour.

    ``image = sigmoid(C · Σ_k w_k · up(L_k))`` with level k at 1/2^k of the size and weight
    ``w_k = 2^(k·decay)``: Adam moves every level by about the learning rate, so the coarse
    levels (the layout, the large colour areas) settle in a few steps and the fine ones add the
    detail, the way a coarse-to-fine schedule would, in one optimisation. All levels start at
    zero plus faint noise (a grey image).
    """

    def __init__(self, batch: int, height: int, width: int, *, levels: int = 5, decay: float = 1.0,
                 sd: float = 0.01, decorrelate: bool = True, device="cpu", generator: torch.Generator | None = None):
        self.h, self.w = height, width
        self.levels: list[torch.Tensor] = []
        self.weights: list[float] = []
        for k in range(max(1, int(levels))):
            lh, lw = max(1, round(height / 2 ** k)), max(1, round(width / 2 ** k))
            if k and (lh < 2 or lw < 2):
                break
            t = torch.randn(batch, 3, lh, lw, generator=generator) * sd
            self.levels.append(t.to(device).requires_grad_(True))
            self.weights.append(2.0 ** (k * decay))
        total = sum(w * w for w in self.weights) ** 0.5
        self.weights = [w / total for w in self.weights]
        self.decorrelate = decorrelate
        self.color = torch.tensor(COLOR_DECORRELATION.T, device=device)

    def parameters(self):
        return list(self.levels)

    def image(self):
        img = 0
        for t, w in zip(self.levels, self.weights):
            up = t if t.shape[-2:] == (self.h, self.w) else F.interpolate(t, size=(self.h, self.w), mode="bilinear",
                                                                         align_corners=False)
            img = img + w * up
        img = img * 4.0  # logits of a few units: sigmoid's range without saturating at the start
        if self.decorrelate:
            img = torch.einsum("nchw,cd->ndhw", img, self.color)
        return torch.sigmoid(img)



def _conv_block(cin: int, cout: int, stride: int = 1, k: int = 3) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, padding_mode="reflect"),
        torch.nn.BatchNorm2d(cout),
        torch.nn.LeakyReLU(0.2, inplace=True))


class _Hourglass(torch.nn.Module):
    """Ulyanov et al.'s encoder-decoder ("Deep Image Prior", 2018), small: strided-conv encoder, bilinear
    decoder, thin skip connections, sigmoid output."""

    def __init__(self, cin: int, channels: tuple[int, ...], skip: int):
        super().__init__()
        self.down, self.skips, self.up = torch.nn.ModuleList(), torch.nn.ModuleList(), torch.nn.ModuleList()
        prev = cin
        for c in channels:
            self.down.append(torch.nn.Sequential(_conv_block(prev, c, stride=2), _conv_block(c, c)))
            self.skips.append(_conv_block(prev, skip, k=1) if skip else None)
            prev = c
        for k in reversed(range(len(channels))):
            c_out = channels[k - 1] if k else channels[0]
            self.up.append(torch.nn.Sequential(torch.nn.BatchNorm2d(prev + skip), _conv_block(prev + skip, c_out),
                                               _conv_block(c_out, c_out, k=1)))
            prev = c_out
        self.out = torch.nn.Conv2d(prev, 3, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        feats, x = [], z
        for down in self.down:
            feats.append(x)
            x = down(x)
        for k, up in zip(reversed(range(len(self.down))), self.up):
            x = F.interpolate(x, size=feats[k].shape[-2:], mode="bilinear", align_corners=False)
            if self.skips[k] is not None:
                x = torch.cat([x, self.skips[k](feats[k])], 1)
            x = up(x)
        return torch.sigmoid(self.out(x))


class DIPParam(Param):
    """Deep image prior (Ulyanov, Vedaldi & Lempitsky 2018): the image is a randomly initialised
    convolutional net's output for a fixed noise input, and the optimiser changes the net's weights.

    The net's structure fits smooth, natural-looking images far sooner than noise or the pooling grid's
    checker, which is the prior a deep layer's inversion lacks. ``reg_noise`` (Ulyanov's input
    perturbation, redrawn after each step) keeps the net from leaning on one exact input.
    """

    def __init__(self, batch: int, height: int, width: int, *, channels: tuple[int, ...] = (16, 32, 64, 64, 64),
                 skip: int = 4, input_channels: int = 16, reg_noise: float = 1 / 30, device="cpu",
                 generator: torch.Generator | None = None):
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        # As many levels as keep the coarsest at least 4 pixels (BatchNorm needs more than one value).
        side = min(height, width)
        levels = min(len(channels), int(np.log2(side // 4)) if side >= 8 else 1)
        with torch.random.fork_rng(devices=[]):  # the net's init from the given generator, not the global one
            torch.manual_seed(seed)
            self.net = _Hourglass(input_channels, tuple(channels)[:levels], skip).to(device)
        self.net.train()  # BatchNorm on the batch's own statistics, as in DIP
        self.z = (torch.rand(batch, input_channels, height, width, generator=gen) * 0.1).to(device)
        self.reg_noise, self.gen = reg_noise, gen
        self.eps = torch.zeros_like(self.z)

    def parameters(self):
        return list(self.net.parameters())

    def image(self):
        return self.net(self.z + self.eps)

    @torch.no_grad()
    def post_step(self):
        if self.reg_noise > 0:
            self.eps = (torch.randn(self.z.shape, generator=self.gen) * self.reg_noise).to(self.z.device)
