"""--style-strength in steps on a few pairs: edge_corr and style_ratio for each, and a sheet of the pictures.

    .venv/bin/python benchmarks/strength_sheet.py                                 # 512 px, 0.25 / 0.5 / 0.75
    .venv/bin/python benchmarks/strength_sheet.py --size 256 --strengths 0.3,0.7 --sheet docs/strength.png

Even steps mean that each step of the strength moves both figures by a similar amount on every pair. The
figures come from ../shared/judge/judge_style.py (through style_quality.Judge), a yardstick only. The pairs
are public-domain paintings or procedural stand-ins, so the sheet may be committed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from style_quality import ROOT, Judge, image_path, label, parse_sets, run_one, thumb, tile_row, write_sheet

PAIRS = [("tubingen", "starry_night"), ("golden_gate", "shipwreck"), ("astronaut", "cubist")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--strengths", default="0.25,0.5,0.75")
    ap.add_argument("--pairs", default=",".join(f"{c}:{s}" for c, s in PAIRS), help="content:style,...")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a style_transfer keyword")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "strength")
    ap.add_argument("--sheet", type=Path, help="the sheet (default OUT/sheet.png)")
    ap.add_argument("--thumb", type=int, default=200)
    ap.add_argument("--reuse", action="store_true",
                    help="keep an output already in OUT that was made with the same settings (its seconds too)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    extra = parse_sets(a.set)
    strengths = [float(s) for s in a.strengths.split(",")]
    pairs = [tuple(p.split(":")) for p in a.pairs.split(",")]
    tmp, judge, rows, results = Path(tempfile.mkdtemp(prefix="strength-")), Judge(), [], []
    print(f"{'content':12s} {'style':13s} {'strength':>8s} {'edge_corr':>9s} {'style_ratio':>11s} {'seconds':>8s}",
          flush=True)
    for content_name, style_name in pairs:
        c, s = image_path(content_name, tmp), image_path(style_name, tmp)
        tiles = [label(thumb(c, a.thumb), [content_name]), label(thumb(s, a.thumb), [style_name])]
        for k in strengths:
            out = a.out / f"{content_name}__{style_name}__s{k:g}_{a.size}.png"
            kw = dict(extra, size=a.size, seed=a.seed, device="cpu", style_strength=k)
            done = out.with_suffix(".json")
            kept = json.loads(done.read_text()) if a.reuse and out.exists() and done.exists() else {}
            if kept.get("kwargs") == kw:
                secs = kept["seconds"]
            else:
                secs = run_one(c, s, out, kw, ROOT)
                done.write_text(json.dumps({"kwargs": kw, "seconds": secs}))
            r = judge(c, s, out)
            results.append({"content": content_name, "style": style_name, "strength": k, "seconds": secs, **r})
            print(f"{content_name:12s} {style_name:13s} {k:8.2f} {r['edge_corr']:9.3f} "
                  f"{r.get('style_ratio', float('nan')):11.3f} {secs:8.1f}", flush=True)
            tiles.append(label(thumb(out, a.thumb), [f"strength {k:g}",
                                                     f"edge {r['edge_corr']:.2f} style {r.get('style_ratio', 0):.2f}"]))
        rows.append(tile_row(tiles))
        write_sheet(rows, a.sheet or a.out / "sheet.png")  # after every pair: a stopped run keeps its rows
        (a.out / f"results_{a.size}.json").write_text(json.dumps(results, indent=1))
    print(f"sheet: {a.sheet or a.out / 'sheet.png'}")


if __name__ == "__main__":
    main()
