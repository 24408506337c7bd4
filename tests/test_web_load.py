"""Load and fault test: ``deepcanvas serve`` on 127.0.0.1 under a bounded burst, then SIGKILLed mid-job.

A bounded burst of concurrent requests (uploads, valid jobs past the queue cap, malformed and
cross-site requests) must get no 5xx; the queue cap must hold; the server's memory and open
files must stay bounded. Then the server is killed with SIGKILL while a job runs and is started
again over the same data folder: the database must pass SQLite's integrity check, the job that had
been reported done must still be listed with the same PNG, the running one must be interrupted with
its last checkpoint, the queued ones resubmittable, and no file may be left without a row.
The figures are printed (pytest -s shows them).
"""

import hashlib
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the studio's web dependencies are not installed (pip install '.[web]')")
pytest.importorskip("uvicorn")
pytest.importorskip("python_multipart")

if not Path("/proc/self/fd").is_dir():
    pytest.skip("needs /proc to measure the server's memory and open files", allow_module_level=True)

from deepcanvas.web.app import MAX_QUEUED  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
from doubles import BUNDLED  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data: Path):
        self.data, self.port = data, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(data.parent / f"server-{self.port}.log", "w+")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        t0 = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "deepcanvas", "serve", "--port", str(self.port),
                                      "--data-dir", str(data), "--checkpoint-every", "0.3"],
                                     cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        while True:
            try:
                self.request("GET", "/api/jobs")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() - t0 > 60:
                    self.log.seek(0)
                    raise AssertionError(f"the studio did not start: {self.log.read()}")
                time.sleep(0.05)
        self.startup = time.monotonic() - t0

    def request(self, method, path, body=None, headers=None, timeout=60):
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def json(self, method, path, obj=None, raw=None, headers=None):
        body = raw if raw is not None else (None if obj is None else json.dumps(obj).encode())
        h = {"Content-Type": "application/json", **(headers or {})} if body is not None else (headers or {})
        status, data = self.request(method, path, body, h)
        return status, json.loads(data) if data else None

    def upload(self, data: bytes, name="a.png"):
        boundary = "deepcanvasload"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        status, out = self.request("POST", "/api/uploads", body,
                                   {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return status, json.loads(out)

    def usage(self) -> tuple[int, int]:
        """(resident memory in kB, open file descriptors) of the server process."""
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))
        return rss, len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        self.proc.wait(30)
        self.log.close()


def png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), (i * 7 % 256, 90, 200)).save(buf, format="PNG")
    return buf.getvalue()


MALFORMED = [
    '{"technique": "style", "params": {"lr": NaN}}', '{"technique": "style", "params": {"lr": "inf"}}',
    '{"technique": "style", "params": {"size": %s}}' % ("9" * 5000), "[" * 100_000 + "]" * 100_000,
    '{"technique": "style", "inputs": {"content": "/etc/passwd"}}', '{"technique":', "",
    json.dumps({"technique": "style", "inputs": BUNDLED, "params": {"size": 10**6}}),
    json.dumps({"technique": "style", "inputs": BUNDLED, "params": {"style_layers": "relu9_9"}}),
]


@pytest.mark.slow  # a server killed with SIGKILL and restarted
def test_burst_then_sigkill_mid_job_then_restart(tmp_path):
    data = tmp_path / "studio"
    srv = Server(data)
    figures = {"first start (s)": round(srv.startup, 2)}
    try:
        # A job reported done before the crash.
        st, done = srv.json("POST", "/api/jobs", {"technique": "style", "inputs": BUNDLED,
                                                  "params": {"size": 32, "iterations": 1, "seed": 0}})
        assert st == 201, done
        t0 = time.monotonic()
        while done["state"] != "done":
            assert time.monotonic() - t0 < 120 and done["state"] in ("queued", "running"), done
            time.sleep(0.1)
            done = srv.json("GET", f"/api/jobs/{done['id']}")[1]
        done_png = hashlib.sha256(srv.request("GET", done["results"][0]["url"])[1]).hexdigest()
        # A long job that will be running at the kill (it writes a checkpoint every 0.3 s).
        st, long_job = srv.json("POST", "/api/jobs", {"technique": "style", "inputs": BUNDLED,
                                                      "params": {"size": 48, "iterations": 5000, "seed": 0}})
        assert st == 201
        base_rss, base_fds = srv.usage()

        # The burst: 8 clients at once.
        def one(i):
            kind = i % 4
            if kind == 0:
                return "upload", srv.upload(png(i), f"p{i}.png")[0]
            if kind == 1:
                return "job", srv.json("POST", "/api/jobs", {"technique": "style", "inputs": BUNDLED,
                                                             "params": {"size": 32, "iterations": 1}})[0]
            if kind == 2:
                return "malformed", srv.json("POST", "/api/jobs", raw=MALFORMED[i // 4 % len(MALFORMED)].encode())[0]
            if i % 8 == 3:
                return "cross-site", srv.json("POST", "/api/jobs", {"technique": "style"}, headers={"Origin": "null"})[0]
            return "read", srv.request("GET", "/api/jobs")[0]

        n = 4 * (MAX_QUEUED + 15)
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(n)))
        figures["burst requests"] = n
        figures["burst time (s)"] = round(time.monotonic() - t0, 2)
        by = {}
        for kind, status in results:
            by.setdefault(kind, []).append(status)
        figures["statuses"] = {k: {s: v.count(s) for s in sorted(set(v))} for k, v in by.items()}
        assert all(s < 500 for _, s in results), figures
        assert set(by["upload"]) == {201}
        assert set(by["malformed"]) <= {400, 413} and set(by["cross-site"]) == {403} and set(by["read"]) == {200}
        accepted = by["job"].count(201)
        assert set(by["job"]) <= {201, 429} and accepted == MAX_QUEUED  # the cap holds, exactly
        jobs = srv.json("GET", "/api/jobs")[1]
        assert sum(j["state"] == "queued" for j in jobs) == MAX_QUEUED
        rss, fds = srv.usage()
        figures["rss MB before/after"] = (base_rss // 1024, rss // 1024)
        figures["fds before/after"] = (base_fds, fds)
        assert fds <= base_fds + 8, figures
        assert rss - base_rss < 300 * 1024, figures

        # SIGKILL while the long job runs, once it has written a checkpoint.
        t0 = time.monotonic()
        while not list((data / "results").glob(f"{long_job['id']}.partial_*.png")):
            assert time.monotonic() - t0 < 120, srv.json("GET", f"/api/jobs/{long_job['id']}")
            time.sleep(0.05)
        assert srv.json("GET", f"/api/jobs/{long_job['id']}")[1]["state"] == "running"
        srv.kill()
    except BaseException:
        if srv.proc.poll() is None:
            srv.kill()
        raise

    db = sqlite3.connect(data / "studio.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    srv = Server(data)
    try:
        figures["recovery start (s)"] = round(srv.startup, 2)
        jobs = {j["id"]: j for j in srv.json("GET", "/api/jobs")[1]}
        assert jobs[done["id"]]["state"] == "done"
        assert hashlib.sha256(srv.request("GET", done["results"][0]["url"])[1]).hexdigest() == done_png
        ran = jobs[long_job["id"]]
        assert ran["state"] == "interrupted" and ran["partial"] and ran["results"]
        assert srv.request("GET", ran["results"][0]["url"])[0] == 200
        waiting = [j for j in jobs.values() if j["state"] == "interrupted" and not j["results"]]
        assert len(waiting) == MAX_QUEUED
        assert not [j for j in jobs.values() if j["state"] in ("queued", "running")]
        uploads = [i for i in srv.json("GET", "/api/images")[1] if not i["bundled"]]
        assert len(uploads) == len(by["upload"])
        # No file without a row, no row without its file.
        db = sqlite3.connect(data / "studio.db")
        rows = {r[0] for r in db.execute("SELECT results FROM jobs")}
        files = {r["file"] for v in rows for r in json.loads(v)}
        ups = {r[0] for r in db.execute("SELECT id FROM uploads")}
        db.close()
        assert {p.name for p in (data / "results").iterdir()} == files
        assert {p.name for p in (data / "uploads").iterdir()} == {f"{u}.{x}" for u in ups for x in ("img", "jpg")}
        # A queued job is resubmitted and runs.
        st, again = srv.json("POST", f"/api/jobs/{waiting[0]['id']}/resubmit")
        assert st == 201
        t0 = time.monotonic()
        while again["state"] not in ("done", "failed"):
            assert time.monotonic() - t0 < 120
            time.sleep(0.1)
            again = srv.json("GET", f"/api/jobs/{again['id']}")[1]
        assert again["state"] == "done"
        print("\nstudio load/fault figures:", json.dumps(figures))
    finally:
        srv.kill(signal.SIGTERM)
