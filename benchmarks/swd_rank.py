"""Ranking a sliced-Wasserstein step's projections: a sort against swd.rank_levels (a histogram), on this CPU.

One step of the default style loss ranks relu1_1's 64 projections of 65,536 sampled positions (and relu2_1's of
up to as many). Prints the milliseconds of each way, forward and backward of the loss included, and how far the
histogram's levels are from the sorted ones.

    python benchmarks/swd_rank.py [--positions 65536] [--directions 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from deepcanvas.objectives import swd
from deepcanvas.objectives.base import scaled_mse


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--positions", type=int, default=65536)
    ap.add_argument("--directions", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.manual_seed(0)
    n, k = a.positions, a.directions
    feats = torch.relu(torch.randn(64, n) + 0.3)  # relu-like features: a peak at zero and a tail
    dirs = swd.random_directions(64, k)
    style = torch.relu(torch.randn(64, 16384) * 1.5 - 0.1)
    table = swd.weighted_quantiles(dirs.T @ style, torch.full((16384,), 1 / 16384), (torch.arange(1024) + 0.5) / 1024)
    proj0 = dirs.T @ feats

    def by_sort():
        p = proj0.clone().requires_grad_(True)
        scaled_mse(p.sort(dim=1).values, swd.interpolate_table(table, n)).backward()

    def by_rank():
        p = proj0.clone().requires_grad_(True)
        scaled_mse(p, swd.table_at(table, swd.rank_levels(p.detach()))).backward()

    ms_sort, ms_rank = timed(by_sort, a.repeats), timed(by_rank, a.repeats)
    exact = (proj0.argsort(1).argsort(1).float() + 0.5) / n
    err = (swd.rank_levels(proj0) - exact).abs()
    print(f"threads {torch.get_num_threads()}, {k} directions x {n} positions")
    print(f"sort: {ms_sort:.1f} ms   rank_levels: {ms_rank:.1f} ms   ratio {ms_sort / ms_rank:.2f}x")
    print(f"levels off by {float(err.mean()):.1e} on average, {float(err.max()):.1e} at most "
          f"(the style tables' step: {1 / 1024:.1e})")


if __name__ == "__main__":
    main()
