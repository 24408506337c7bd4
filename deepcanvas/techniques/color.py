"""Colour control for style transfer (Gatys et al., "Controlling Perceptual Factors", 2017)."""

from __future__ import annotations

import torch

# ITU-R BT.601 RGB <-> YCbCr (offsets dropped: they cancel out in the swaps below).
_RGB2YUV = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def rgb_to_yuv(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("dc,nchw->ndhw", _RGB2YUV.to(x), x)


def yuv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("dc,nchw->ndhw", torch.linalg.inv(_RGB2YUV).to(x), x)


def luma_swap(result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Keep the result's luminance and the content's colours (neural-style-pt's --original_colors)."""
    r, c = rgb_to_yuv(result), rgb_to_yuv(content)
    return yuv_to_rgb(torch.cat([r[:, :1], c[:, 1:]], 1)).clamp(0, 1)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """A grey RGB image of ``x``'s luminance."""
    return rgb_to_yuv(x)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style's luminance to the content's mean and spread."""
    s, c = rgb_to_yuv(style)[:, :1], rgb_to_yuv(content)[:, :1]
    y = (s - s.mean()) / (s.std() + 1e-6) * c.std() + c.mean()
    return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def _color_stats(x: torch.Tensor, eps: float):
    """(pixels (3, N), mean (3, 1), covariance (3, 3)) of an image's colours."""
    f = x[0].reshape(3, -1)
    mu = f.mean(1, keepdim=True)
    d = f - mu
    return f, mu, d @ d.T / d.shape[1] + eps * torch.eye(3, dtype=x.dtype, device=x.device)


def _sqrtm(m: torch.Tensor, eps: float, inverse: bool = False) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(m)
    vals = vals.clamp_min(eps).sqrt()
    if inverse:
        vals = 1 / vals
    return vecs @ torch.diag(vals) @ vecs.T


def _recolor(x: torch.Tensor, mu_t: torch.Tensor, cov_t: torch.Tensor, eps: float) -> torch.Tensor:
    """``x`` moved by an affine map of its colours to mean ``mu_t`` and covariance ``cov_t``.

    Uses the symmetric matrix square roots (the "image analogies" variant
    Gatys et al. found most faithful), so no axis is privileged.
    """
    f, mu, cov = _color_stats(x, eps)
    a = _sqrtm(cov_t, eps) @ _sqrtm(cov, eps, inverse=True)
    return (a @ (f - mu) + mu_t).reshape_as(x[0])[None].clamp(0, 1)


def match_histogram(style: torch.Tensor, content: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Recolour ``style`` so its colour mean and covariance equal ``content``'s."""
    _, mu_c, cov_c = _color_stats(content, eps)
    return _recolor(style, mu_c, cov_c, eps)


def match_palette(image: torch.Tensor, refs: list[torch.Tensor], weights: list[float],
                  eps: float = 1e-5) -> torch.Tensor:
    """Recolour ``image`` to the colour mean and covariance of the mixture of ``refs`` (shares ``weights``).

    The photo's layout and contrast stay (an affine map of colours keeps every edge); its palette becomes the
    paintings'. The mixture's moments: mean sum(w_i mu_i), covariance sum(w_i (C_i + mu_i mu_i^T)) - mu mu^T.
    """
    mu = torch.zeros(3, 1, dtype=image.dtype, device=image.device)
    second = torch.zeros(3, 3, dtype=image.dtype, device=image.device)
    for r, w in zip(refs, weights):
        _, m, c = _color_stats(r.to(image), eps)
        mu = mu + w * m
        second = second + w * (c + m @ m.T)
    return _recolor(image, mu, second - mu @ mu.T, eps)
