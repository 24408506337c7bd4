"""The studio under a longer fuzz run: requests to every endpoint drawn from its models, counted by status.

    .venv/bin/python benchmarks/studio_fuzz.py                  # 2000 requests, seed 0
    .venv/bin/python benchmarks/studio_fuzz.py --requests 20000 --seed 7

The strategies are the suite's (tests/studio_requests.py: job bodies from the pydantic models of
deepcanvas/web/schemas.py with each field's range ends and neighbours, odd text and numbers, malformed JSON
and Host headers, uploads, video submissions, job actions). The app runs in-process with its queue stopped, so
accepted jobs wait (the cap of 50 then answers 429) and nothing heavy runs. Prints the requests sent, the
responses by status and endpoint, and every 5xx (the aim: none); exits 1 if there was one.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="how many requests to send (default: 2000)")
    ap.add_argument("--seed", type=int, default=0, help="the random seed (default: 0)")
    args = ap.parse_args()

    from fastapi.testclient import TestClient
    from h11 import LocalProtocolError
    from hypothesis import HealthCheck, given, reject, seed, settings

    from studio_requests import create_app_not_running, request

    app = create_app_not_running(tempfile.mkdtemp(prefix="studio-fuzz-"))
    by_status: collections.Counter = collections.Counter()
    by_route: collections.Counter = collections.Counter()
    failures: list[str] = []
    t0 = time.monotonic()
    with TestClient(app, raise_server_exceptions=False) as client:
        client.post("/api/jobs", json={"technique": "style", "inputs": {"content": "bundled:chelsea.jpg",
                                                                        "styles": ["bundled:swirls.jpg"]},
                                       "params": {"size": 32, "iterations": 1}})

        @seed(args.seed)
        @settings(max_examples=args.requests, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(req=request())
        def run(req):
            method, path, kwargs = req
            try:
                r = client.request(method, path, **kwargs)
            except (UnicodeEncodeError, ValueError, LocalProtocolError):  # a header the client will not send
                reject()
            route = re.sub(r"/api/(jobs|images|videos)/[^/]+", r"/api/\1/{id}", path)
            route = re.sub(r"/result/[^/?]+", "/result/{n}", route)
            by_status[r.status_code] += 1
            by_route[(method, route.split("?")[0], r.status_code)] += 1
            if r.status_code >= 500:
                failures.append(f"{r.status_code} {method} {path} {str(kwargs)[:200]} -> {r.text[:200]}")

        run()
    seconds = time.monotonic() - t0
    print(f"{sum(by_status.values())} requests in {seconds:.0f} s (seed {args.seed})")
    print("by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
    for (method, route, status), n in sorted(by_route.items()):
        print(f"  {method:4} {route:40} {status}: {n}")
    for f in failures[:20]:
        print("5xx:", f)
    print(f"{len(failures)} responses were 5xx")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
