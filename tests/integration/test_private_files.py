"""The data folder and every file Spiral keeps in it are private to the service's user (issue 10,
item 12): the record and its WAL, the signing key, the seq mark, the shared state."""

from __future__ import annotations

import stat

from spiral_web import create_app


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_folder_and_its_files_are_private(tmp_path):
    data = tmp_path / "data"
    app = create_app({"data_dir": str(data), "fake_clock": True, "start_ticker": False})
    client = app.test_client()
    assert client.post("/stream/glint", json={"module": "a.b"}).status_code == 201
    app.extensions["spiral"].close()
    assert mode(data) == 0o700
    files = [p for p in data.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"spiral.sqlite3", "secret_key"}
    assert {p.name: oct(mode(p)) for p in files} == {p.name: oct(0o600) for p in files}


def test_files_an_older_release_left_open_are_made_private(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "spiral.sqlite3").touch(mode=0o644)
    app = create_app({"data_dir": str(data), "fake_clock": True, "start_ticker": False})
    app.extensions["spiral"].close()
    assert mode(data / "spiral.sqlite3") == 0o600
    assert mode(data) == 0o755  # a folder the operator chose is left as it is (with a warning)
