"""The studio's state on disk: an SQLite database (``studio.db``) next to the files it lists.

Tables (see :data:`MIGRATIONS`):

* ``jobs``: one row per job: the request as submitted (so it can be resubmitted), the
  technique, inputs and converted parameters, its state (queued, running, done, failed,
  cancelled, interrupted), timestamps, progress at the end, the error, the result files
  (``results/<job id>*.png``) and their total size;
* ``uploads``: one row per accepted upload (``uploads/<id>.img`` and its ``<id>.jpg`` thumbnail).

A row with ``deleting = 1`` is being removed: its files go first, then the row. Files are
written before the row that lists them, and removed after the row is marked, so a crash at any
point leaves either a row whose files are still there, a marked row (finished at the next
start-up by :meth:`Store.recover`), or a file with no row (an orphan, removed at start-up).

Schema changes are a list of migrations: the database's ``PRAGMA user_version`` says how many
have been applied; a later version appends to :data:`MIGRATIONS`, never edits an entry.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import threading
import time
from pathlib import Path

from ..errors import DeepCanvasError
from .datadir import folder_id, new_folder_id, quarantine, user_files

#: Migration i takes the database from user_version i to i + 1 (run in one transaction).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        technique TEXT NOT NULL,
        title TEXT NOT NULL,
        request TEXT NOT NULL,
        inputs TEXT NOT NULL,
        params TEXT NOT NULL,
        preview_every INTEGER NOT NULL,
        state TEXT NOT NULL,
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        iteration INTEGER NOT NULL DEFAULT 0,
        total INTEGER NOT NULL DEFAULT 0,
        loss REAL,
        elapsed REAL NOT NULL DEFAULT 0,
        error TEXT,
        results TEXT NOT NULL DEFAULT '[]',
        partial INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        deleting INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_created ON jobs (created);
    CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        created REAL NOT NULL,
        deleting INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX uploads_created ON uploads (created);
    """,
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
]

LIVE = ("queued", "running")
_JOB_FILE = re.compile(r"^([0-9a-f]{32})(?:_\d+)?\.png$")
_CHECKPOINT = re.compile(r"^([0-9a-f]{32})\.partial_(\d+)\.png$")
_UPLOAD_FILE = re.compile(r"^([0-9a-f]{32})\.(?:img|jpg)$")
JOB_COLUMNS = ("id", "technique", "title", "request", "inputs", "params", "preview_every", "state", "created",
               "started", "finished", "iteration", "total", "loss", "elapsed", "error", "results", "partial", "bytes")
_JSON_COLUMNS = ("request", "inputs", "params", "results")
STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
_RESULT_FILE = re.compile(r"^[0-9a-f]{32}(?:_\d+)?\.png$")


def _check_row(d: dict) -> None:
    """A job row's shape, as the page and the worker expect it (ValueError/TypeError if not)."""
    if not (isinstance(d["id"], str) and re.fullmatch(r"[0-9a-f]{32}", d["id"])):
        raise ValueError("bad id")
    if d["state"] not in STATES:
        raise ValueError(f"unknown state {d['state']!r}")
    for c in ("request", "inputs", "params"):
        if not isinstance(d[c], dict):
            raise TypeError(f"{c} is not an object")
    if not isinstance(d["results"], list) or not all(
            isinstance(r, dict) and isinstance(r.get("file"), str) and _RESULT_FILE.match(r["file"])
            and isinstance(r.get("width"), int) and isinstance(r.get("height"), int) for r in d["results"]):
        raise ValueError("bad results")
    for c in ("created", "elapsed"):
        float(d[c])
    for c in ("preview_every", "iteration", "total"):
        if not isinstance(d[c], int):
            raise TypeError(f"{c} is not a whole number")
    for c in ("title", "technique"):
        if not isinstance(d[c], str):
            raise TypeError(f"{c} is not text")


def checkpoint_name(job_id: str, i: int) -> str:
    return f"{job_id}.partial_{i}.png"


def result_name(job_id: str, i: int, n: int) -> str:
    return f"{job_id}.png" if n == 1 else f"{job_id}_{i}.png"


class Store:
    """One connection, used under a lock by the endpoints and the worker thread."""

    def __init__(self, data_dir: Path, repair: bool = False):
        self.dir = Path(data_dir)
        self.results = self.dir / "results"
        self.uploads = self.dir / "uploads"
        for d in (self.results, self.uploads):
            d.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "studio.db"
        self.lock = threading.RLock()
        self.reported: set[str] = set()  # damaged rows already named in the log
        fresh = not self.path.is_file() or self.path.stat().st_size == 0
        if fresh and user_files(self.dir):
            if not repair:
                raise DeepCanvasError(f"the data folder '{self.dir}' holds files but its database studio.db is "
                                      "missing or empty; put the database back, or start with --repair to move "
                                      "the files into its 'quarantine' folder and begin an empty gallery")
            self._quarantine()  # with the empty database and its stale -wal/-shm
        try:
            self._open()
        except DeepCanvasError:
            if not repair:
                raise
            self._quarantine()
            self._open()
        self.migrate()
        self.owned = self._claim()

    def _open(self) -> None:
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # a job reported done survives a crash or power cut
            ok = self.db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as e:
            self._close_quietly()
            raise DeepCanvasError(f"cannot use the studio database '{self.path}': {e}; start with --repair to "
                                  "move it and the files aside and begin an empty gallery") from None
        if ok != "ok":
            self._close_quietly()
            raise DeepCanvasError(f"the studio database '{self.path}' is damaged ({ok}); start with --repair to "
                                  "move it and the files aside and begin an empty gallery")

    def _close_quietly(self) -> None:
        try:
            self.db.close()
        except Exception:
            pass

    def _quarantine(self) -> None:
        """--repair: the files and the unusable database moved aside, never deleted."""
        paths = user_files(self.dir)
        paths += [p for p in (self.dir / f"studio.db{s}" for s in ("", "-wal", "-shm", "-journal")) if p.exists()]
        dest = quarantine(self.dir, paths)
        if dest is not None:
            print(f"deepcanvas: --repair moved {len(paths)} file(s) the database does not list into '{dest}'",
                  file=sys.stderr)

    def _claim(self) -> bool:
        """Whether this database names the folder as its own (then, and only then, orphans are removed)."""
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'folder'").fetchone()
        on_disk = folder_id(self.dir)
        if row is None:  # a new database, or one from before folder ids: it claims the folder it opened in
            fid = on_disk or new_folder_id(self.dir)
            with self.lock:
                self.db.execute("INSERT INTO meta (key, value) VALUES ('folder', ?)", (fid,))
            return True
        if row[0] == on_disk:
            return True
        print(f"deepcanvas: warning: the database in '{self.dir}' names another data folder (was it copied "
              "here?); files it does not list are left alone", file=sys.stderr)
        return False

    # -- schema ---------------------------------------------------------------------------------------
    def migrate(self) -> int:
        with self.lock:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise DeepCanvasError(f"the studio database '{self.path}' was written by a newer deepcanvas "
                                      f"(schema {version}, this one knows {len(MIGRATIONS)}); upgrade deepcanvas")
            for i in range(version, len(MIGRATIONS)):
                self.db.executescript(f"BEGIN IMMEDIATE;\n{MIGRATIONS[i]}\nPRAGMA user_version = {i + 1};\nCOMMIT;")
            return len(MIGRATIONS)

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # -- jobs -------------------------------------------------------------------------------------------
    def insert_job(self, row: dict) -> None:
        cols = [c for c in JOB_COLUMNS if c in row]
        vals = [json.dumps(row[c]) if c in _JSON_COLUMNS else row[c] for c in cols]
        with self.lock:
            self.db.execute(f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", vals)

    def update_job(self, job_id: str, **fields) -> None:
        cols = list(fields)
        vals = [json.dumps(fields[c]) if c in _JSON_COLUMNS else fields[c] for c in cols]
        with self.lock:
            self.db.execute(f"UPDATE jobs SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?", [*vals, job_id])

    def jobs(self) -> list[dict]:
        """Every job row that reads back whole; a damaged one is skipped and named once on stderr."""
        with self.lock:
            rows = self.db.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE deleting = 0 "
                                   "ORDER BY created").fetchall()
        return [d for d in map(self._job_row, rows) if d is not None]

    def job(self, job_id: str) -> dict | None:
        with self.lock:
            r = self.db.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = ? AND deleting = 0",
                                (job_id,)).fetchone()
        return None if r is None else self._job_row(r)

    def _job_row(self, r) -> dict | None:
        d = dict(r)
        try:
            for c in _JSON_COLUMNS:
                d[c] = json.loads(d[c])
            _check_row(d)
        except (TypeError, ValueError, KeyError) as e:
            if d.get("id") not in self.reported:
                self.reported.add(d.get("id"))
                print(f"deepcanvas: warning: job {str(d.get('id'))[:40]!r} in '{self.path}' is damaged "
                      f"({type(e).__name__}: {str(e)[:80]}); it is skipped", file=sys.stderr)
            return None
        d["partial"] = bool(d["partial"])
        return d

    # -- uploads ------------------------------------------------------------------------------------------
    def insert_upload(self, uid: str, name: str, width: int, height: int) -> dict:
        size = sum(p.stat().st_size for p in self._upload_files(uid) if p.exists())
        created = time.time()
        with self.lock:
            self.db.execute("INSERT INTO uploads (id, name, width, height, bytes, created) VALUES (?, ?, ?, ?, ?, ?)",
                            (uid, name, width, height, size, created))
        return {"id": uid, "name": name, "width": width, "height": height, "bytes": size, "created": created}

    def uploads_list(self) -> list[dict]:
        with self.lock:
            rows = self.db.execute("SELECT id, name, width, height, bytes, created FROM uploads WHERE deleting = 0 "
                                   "ORDER BY created DESC").fetchall()
        return [dict(r) for r in rows]

    def has_upload(self, uid: str) -> bool:
        with self.lock:
            return self.db.execute("SELECT 1 FROM uploads WHERE id = ? AND deleting = 0", (uid,)).fetchone() is not None

    def _upload_files(self, uid: str) -> list[Path]:
        return [self.uploads / f"{uid}.img", self.uploads / f"{uid}.jpg"]

    def _job_files(self, job_id: str) -> list[Path]:
        return [p for p in self.results.glob(f"{job_id}*") if p.name.startswith(job_id)]

    # -- deleting: mark, remove the files, remove the row ----------------------------------------------------
    def delete_job(self, job_id: str) -> None:
        self._delete("jobs", job_id, self._job_files)

    def delete_upload(self, uid: str) -> None:
        self._delete("uploads", uid, self._upload_files)

    def _delete(self, table: str, key: str, files) -> None:
        with self.lock:
            self.db.execute(f"UPDATE {table} SET deleting = 1 WHERE id = ?", (key,))
        for p in files(key):
            p.unlink(missing_ok=True)
        with self.lock:
            self.db.execute(f"DELETE FROM {table} WHERE id = ?", (key,))

    # -- start-up --------------------------------------------------------------------------------------------
    def recover(self) -> dict:
        """After a stop (clean or not): finish deletions, settle the jobs that were live, remove orphans.

        A running job becomes ``interrupted``, keeping its last checkpoint as a partial result;
        a queued one becomes ``interrupted`` with no result (the page offers to resubmit it).
        Returns counts of what was done.
        """
        out = {"deleted": 0, "interrupted": 0, "orphans": 0}
        with self.lock:
            marked = [(t, r[0]) for t in ("jobs", "uploads")
                      for r in self.db.execute(f"SELECT id FROM {t} WHERE deleting = 1").fetchall()]
        for table, key in marked:
            self._delete(table, key, self._job_files if table == "jobs" else self._upload_files)
            out["deleted"] += 1
        now = time.time()
        for job in [j for j in self.jobs() if j["state"] in LIVE]:
            ran = job["state"] == "running"
            finals = sorted(p for p in self.results.iterdir() if _JOB_FILE.match(p.name)
                            and _JOB_FILE.match(p.name).group(1) == job["id"])
            checkpoints = sorted((p for p in self.results.iterdir() if _CHECKPOINT.match(p.name)
                                  and _CHECKPOINT.match(p.name).group(1) == job["id"]),
                                 key=lambda p: int(_CHECKPOINT.match(p.name).group(2)))
            if not finals and checkpoints:  # the last checkpoint becomes the partial result
                for i, p in enumerate(checkpoints):
                    p.replace(self.results / result_name(job["id"], i, len(checkpoints)))
                finals = sorted(p for p in self.results.iterdir() if _JOB_FILE.match(p.name)
                                and _JOB_FILE.match(p.name).group(1) == job["id"])
            for p in checkpoints:
                p.unlink(missing_ok=True)
            results = []
            for p in finals:
                try:
                    from PIL import Image

                    with Image.open(p) as im:
                        results.append({"file": p.name, "width": im.width, "height": im.height})
                except OSError:
                    p.unlink(missing_ok=True)
            error = ("the studio stopped while this job ran; the last image saved is kept" if ran and results else
                     "the studio stopped while this job ran" if ran else
                     "the studio stopped before this job ran; resubmit it")
            self.update_job(job["id"], state="interrupted", finished=job["finished"] or now, error=error,
                            results=results, partial=int(bool(results)),
                            bytes=sum((self.results / r["file"]).stat().st_size for r in results))
            out["interrupted"] += 1
        out["orphans"] = self.remove_orphans()
        return out

    def remove_orphans(self) -> int:
        """Files with no row (and temporary files left by a crash); only at start-up, when nothing is writing,
        and only when the database names this folder as its own."""
        if not self.owned:
            return 0
        with self.lock:
            jobs = {r[0] for r in self.db.execute("SELECT id FROM jobs WHERE deleting = 0")}
            uploads = {r[0] for r in self.db.execute("SELECT id FROM uploads WHERE deleting = 0")}
        n = 0
        for p in list(self.results.iterdir()):
            m = _JOB_FILE.match(p.name) or _CHECKPOINT.match(p.name)
            if p.is_file() and not (m and m.group(1) in jobs):
                p.unlink(missing_ok=True)
                n += 1
        for p in list(self.uploads.iterdir()):
            m = _UPLOAD_FILE.match(p.name)
            if p.is_file() and not (m and m.group(1) in uploads):
                p.unlink(missing_ok=True)
                n += 1
        return n

    # -- retention -------------------------------------------------------------------------------------------
    def retain(self, keep_jobs: int, keep_uploads: int, keep_bytes: int, in_use=frozenset()) -> list[tuple[str, str]]:
        """Delete the oldest finished jobs and uploads until at most ``keep_jobs`` jobs, ``keep_uploads``
        uploads and ``keep_bytes`` bytes (results and uploads together) are kept.

        Live jobs are never deleted, nor uploads in ``in_use`` (inputs of live jobs), nor the newest upload.
        Returns [("job" | "upload", id)] deleted, oldest first.
        """
        with self.lock:
            jobs = [tuple(r) for r in self.db.execute(
                "SELECT id, created, bytes FROM jobs WHERE deleting = 0 AND state NOT IN ('queued', 'running') "
                "ORDER BY created").fetchall()]
            ups = [tuple(r) for r in self.db.execute(
                "SELECT id, created, bytes FROM uploads WHERE deleting = 0 ORDER BY created").fetchall()]
            total = self.db.execute("SELECT (SELECT COALESCE(SUM(bytes), 0) FROM jobs WHERE deleting = 0) + "
                                    "(SELECT COALESCE(SUM(bytes), 0) FROM uploads WHERE deleting = 0)").fetchone()[0]
        n_ups_all = len(ups)
        # The newest upload was just accepted (its page has not used it yet): never deleted here.
        ups = [u for u in ups[:-1] if u[0] not in in_use]
        gone: list[tuple[str, str]] = []
        while jobs or ups:
            over_jobs = len(jobs) > keep_jobs
            over_ups = n_ups_all > keep_uploads and ups
            over_bytes = total > keep_bytes
            if over_jobs and (not over_ups or jobs[0][1] <= ups[0][1]):
                kind, (key, _, size) = "job", jobs.pop(0)
            elif over_ups:
                kind, (key, _, size) = "upload", ups.pop(0)
                n_ups_all -= 1
            elif over_bytes:
                if ups and (not jobs or ups[0][1] < jobs[0][1]):
                    kind, (key, _, size) = "upload", ups.pop(0)
                    n_ups_all -= 1
                else:
                    kind, (key, _, size) = "job", jobs.pop(0)
            else:
                break
            (self.delete_job if kind == "job" else self.delete_upload)(key)
            total -= size
            gone.append((kind, key))
        return gone
