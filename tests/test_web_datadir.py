"""The studio's data folder is owned: one server per folder, nothing deleted unless the database names the
folder as its own, a damaged row skipped, a just-accepted upload kept, and only regular files served."""

import os
import socket
import sqlite3
import time

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the studio's web dependencies are not installed (pip install '.[web]')")
pytest.importorskip("python_multipart")

from fastapi.testclient import TestClient  # noqa: E402

from deepcanvas import cli  # noqa: E402
from deepcanvas.errors import DeepCanvasError  # noqa: E402
from deepcanvas.web import store  # noqa: E402
from deepcanvas.web.app import create_app  # noqa: E402

from doubles import BUNDLED  # noqa: E402
from test_web_hardening import TINY, error_of, png_bytes  # noqa: E402


def _done_job(st, jid, size=(8, 8)):
    st.insert_job({"id": jid, "technique": "style", "title": "t", "request": {}, "inputs": {}, "params": {},
                   "preview_every": 5, "state": "done", "created": time.time(),
                   "results": [{"file": f"{jid}.png", "width": size[0], "height": size[1]}]})
    Image.new("RGB", size, (9, 8, 7)).save(st.results / f"{jid}.png")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- H. one server per folder ------------------------------------------------------------------------------------------
def test_a_second_studio_on_the_same_folder_is_refused_naming_the_first(data_dir, monkeypatch, capsys):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    with TestClient(create_app(data_dir, port=8123)) as c:
        done = c.post("/api/uploads", files={"file": ("a.png", png_bytes(), "image/png")}).json()
        with pytest.raises(DeepCanvasError, match=f"in use by another deepcanvas studio \\(PID {os.getpid()}, "
                                                  "port 8123\\)"):
            create_app(data_dir)
        port = str(_free_port())
        assert cli.main(["serve", "--port", port, "--data-dir", str(data_dir)]) != 0
        err = capsys.readouterr().err
        assert "in use by another deepcanvas studio" in err and "port 8123" in err and err.count("\n") == 1
        # The refused one touched nothing: the first one's upload is still served.
        assert c.get(f"/api/images/{done['id']}").status_code == 200
    with TestClient(create_app(data_dir)) as c:  # released when the first one stopped
        assert [i["id"] for i in c.get("/api/images").json() if not i["bundled"]] == [done["id"]]


# -- G. a missing, empty or damaged database never wipes the gallery -----------------------------------------------------
@pytest.mark.parametrize("how", ["emptied", "deleted"])
def test_a_missing_or_empty_database_next_to_files_refuses_to_start(data_dir, how):
    st = store.Store(data_dir)
    _done_job(st, "a" * 32)
    st.close()
    (data_dir / "uploads" / ("c" * 32 + ".img")).write_bytes(png_bytes())
    for suffix in ("-wal", "-shm"):
        (data_dir / f"studio.db{suffix}").unlink(missing_ok=True)
    if how == "emptied":
        (data_dir / "studio.db").write_bytes(b"")
    else:
        (data_dir / "studio.db").unlink()
    def files():
        return sorted(p.relative_to(data_dir) for p in data_dir.rglob("*") if p.is_file() and p.name != "studio.lock")

    before = files()
    with pytest.raises(DeepCanvasError, match="missing or empty; .*--repair") as e:
        create_app(data_dir)
    assert "\n" not in str(e.value)
    assert files() == before  # nothing gone
    # --repair moves (never deletes) the files it does not know, and starts an empty gallery.
    with TestClient(create_app(data_dir, repair=True)) as c:
        assert c.get("/api/jobs").json() == []
    moved = sorted(p.name for p in (data_dir / "quarantine").rglob("*") if p.is_file())
    assert [n for n in moved if not n.startswith("studio.db")] == sorted(["a" * 32 + ".png", "c" * 32 + ".img"])
    assert list((data_dir / "results").iterdir()) == [] and list((data_dir / "uploads").iterdir()) == []


def test_a_damaged_database_is_moved_aside_only_with_repair(data_dir):
    st = store.Store(data_dir)
    _done_job(st, "a" * 32)
    st.close()
    (data_dir / "studio.db").write_bytes(b"not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (data_dir / f"studio.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(DeepCanvasError, match="--repair"):
        create_app(data_dir)
    assert (data_dir / "results" / f"{'a' * 32}.png").is_file()
    with TestClient(create_app(data_dir, repair=True)) as c:
        assert c.get("/api/jobs").json() == []
    moved = {p.name for p in (data_dir / "quarantine").rglob("*") if p.is_file()}
    assert {"studio.db", "a" * 32 + ".png"} <= moved


def test_a_database_that_does_not_name_the_folder_removes_nothing(data_dir, capsys):
    st = store.Store(data_dir)
    _done_job(st, "a" * 32)
    st.close()
    (data_dir / "studio.id").write_text("f" * 32)  # the database came from another folder
    stray = data_dir / "results" / ("b" * 32 + ".png")
    stray.write_bytes(b"someone's file")
    with TestClient(create_app(data_dir)) as c:
        assert [j["id"] for j in c.get("/api/jobs").json()] == ["a" * 32]
    assert stray.is_file() and "names another data folder" in capsys.readouterr().err


def test_a_damaged_row_is_skipped_and_reported(data_dir, capsys):
    st = store.Store(data_dir)
    for jid in ("a" * 32, "b" * 32, "c" * 32):
        _done_job(st, jid)
    st.db.execute("UPDATE jobs SET params = '{bad' WHERE id = ?", ("a" * 32,))
    st.db.execute("UPDATE jobs SET results = '[{\"file\": \"../../etc/passwd\"}]' WHERE id = ?", ("c" * 32,))
    st.close()
    with TestClient(create_app(data_dir)) as c:
        assert [j["id"] for j in c.get("/api/jobs").json()] == ["b" * 32]
        assert "no job" in error_of(c.get(f"/api/jobs/{'a' * 32}"), 404)
    err = capsys.readouterr().err
    assert f"job '{'a' * 32}'" in err and "damaged" in err and "Traceback" not in err
    assert (data_dir / "results" / f"{'a' * 32}.png").is_file()  # its row exists: its file is no orphan


# -- I. retention keeps the upload it has just accepted ------------------------------------------------------------------
def test_retention_keeps_a_just_accepted_upload(data_dir):
    app = create_app(data_dir, keep_uploads=2)
    c = TestClient(app)  # not started: no worker, so the jobs stay queued
    ups = [c.post("/api/uploads", files={"file": (f"{i}.png", png_bytes(), "image/png")}).json()["id"]
           for i in range(2)]
    for u in ups:
        assert c.post("/api/jobs", json={"technique": "style", "inputs": {**BUNDLED, "content": u},
                                         "params": TINY}).status_code == 201
    new = c.post("/api/uploads", files={"file": ("new.png", png_bytes(), "image/png")})
    assert new.status_code == 201
    assert c.get(f"/api/images/{new.json()['id']}").status_code == 200
    assert {i["id"] for i in c.get("/api/images").json() if not i["bundled"]} == {*ups, new.json()["id"]}
    app.state.studio.close()


# -- M. only regular files the studio wrote are served ---------------------------------------------------------------------
def test_links_in_the_data_folder_are_not_followed(data_dir, tmp_path):
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(secret)
    st = store.Store(data_dir)
    _done_job(st, "a" * 32)
    (st.results / f"{'a' * 32}.png").unlink()
    os.symlink(secret, st.results / f"{'a' * 32}.png")
    st.close()
    with TestClient(create_app(data_dir)) as c:
        url = f"/api/jobs/{'a' * 32}/result/0"
        assert error_of(c.get(url), 404) and error_of(c.get(url + "?thumb=1"), 404)
        up = c.post("/api/uploads", files={"file": ("a.png", png_bytes(), "image/png")}).json()["id"]
        thumb = data_dir / "uploads" / f"{up[7:]}.jpg"
        thumb.unlink()
        os.symlink(secret, thumb)
        assert error_of(c.get(f"/api/images/{up}"), 404)
        img = data_dir / "uploads" / f"{up[7:]}.img"
        img.unlink()
        os.symlink(secret, img)
        assert "unknown image" in error_of(c.post("/api/jobs", json={
            "technique": "style", "inputs": {**BUNDLED, "content": up}, "params": TINY}), 400)


def test_a_damaged_result_gives_a_clean_404_thumbnail(data_dir):
    st = store.Store(data_dir)
    _done_job(st, "a" * 32)
    (st.results / f"{'a' * 32}.png").write_bytes(b"\x89PNG broken")
    st.close()
    with TestClient(create_app(data_dir)) as c:
        assert "unreadable" in error_of(c.get(f"/api/jobs/{'a' * 32}/result/0?thumb=1"), 404)
    db = sqlite3.connect(data_dir / "studio.db")
    assert db.execute("SELECT value FROM meta WHERE key = 'folder'").fetchone()[0] == \
        (data_dir / "studio.id").read_text()
    db.close()
