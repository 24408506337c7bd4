"""Progress on the terminal: a tqdm bar with the loss and the time left, periodic prints, saved intermediates."""

from __future__ import annotations

import sys
from pathlib import Path


class Reporter:
    """tqdm progress bar with loss and ETA, periodic prints and saved intermediates."""

    def __init__(self, out: Path, print_every: int, save_every: int, quiet: bool):
        self.out, self.print_every, self.save_every, self.quiet = out, print_every, save_every, quiet
        self.bar = None

    def __call__(self, p) -> None:
        from tqdm import tqdm

        if self.bar is None and not self.quiet:
            self.bar = tqdm(total=p.total, unit="it", dynamic_ncols=True, file=sys.stderr)
        if self.bar is not None:
            self.bar.total = p.total
            self.bar.set_description(p.stage, refresh=False)
            self.bar.set_postfix_str(f"loss {p.loss:.4g}", refresh=False)
            self.bar.update(p.iteration - self.bar.n)
        if self.print_every and p.iteration % self.print_every == 0 and not p.done:
            parts = " ".join(f"{k} {v:.4g}" for k, v in p.parts.items())
            msg = f"iteration {p.iteration}/{p.total} [{p.stage}] loss {p.loss:.4g} ({parts})"
            (tqdm.write(msg, file=sys.stderr) if self.bar is not None else print(msg, file=sys.stderr))
        if self.save_every and p.iteration % self.save_every == 0 and not p.done:
            from .io import save_image

            images = p.images if p.tensor.dim() == 4 and p.tensor.shape[0] > 1 else [p.image]
            for i, img in enumerate(images):  # a batch (several classes) saves one file per image
                tag = f"_{i}" if len(images) > 1 else ""
                save_image(img, self.out.with_name(f"{self.out.stem}_{p.iteration:05d}{tag}{self.out.suffix}"))

    def close(self):
        if self.bar is not None:
            self.bar.close()
