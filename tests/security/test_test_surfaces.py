"""The test-only clock (issue 10, item 11 of the report): `SPIRAL_FAKE_CLOCK=1` exposes
`POST /_test/clock`. A server with it never listens beyond loopback; with tokens configured only
the admin may move the clock; and a malformed body is a 400, never a 500."""

from __future__ import annotations

import pytest

from spiral_web import create_app
from spiral_web.config import ExposureError

from .conftest import ADMIN, PUBLISH, READ, bearer


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"publish_tokens": dict(PUBLISH), "admin_token": ADMIN}, id="with-tokens"),
        pytest.param({"open": True}, id="open-on-purpose"),
    ],
)
def test_a_fake_clock_never_listens_beyond_loopback(tmp_path, extra):
    with pytest.raises(ExposureError) as refused:
        create_app(
            {
                "data_dir": str(tmp_path),
                "host": "0.0.0.0",
                "fake_clock": True,
                "start_ticker": False,
                **extra,
            }
        )
    assert "SPIRAL_FAKE_CLOCK" in str(refused.value)


@pytest.mark.parametrize(
    "headers, status",
    [
        pytest.param({}, 401, id="anonymous"),
        pytest.param(bearer(READ["watcher"]), 403, id="read-token"),
        pytest.param(bearer(PUBLISH["alpha"]), 403, id="publish-token"),
        pytest.param(bearer(ADMIN), 200, id="admin"),
    ],
)
def test_with_tokens_only_the_admin_moves_the_clock(guarded, headers, status):
    clock = guarded.extensions["spiral"].clock
    before = clock.now()
    resp = guarded.test_client().post("/_test/clock", json={"advance": 60}, headers=headers)
    assert resp.status_code == status
    assert clock.now() == (before + 60 if status == 200 else before)


@pytest.mark.parametrize(
    "body",
    [
        b'"advance"',
        b"[]",
        b"[1]",
        b"42",
        b"null",
        b"{",
        b'{"advance": "soon"}',
        b'{"advance": true}',
        b'{"advance": null}',
        b'{"advance": NaN}',
        b'{"advance": Infinity}',
        b'{"advance": 1e308}',
        b'{"advance": 1, "set": 2}',
        b'{"set": -1}',
        b'{"set": 1e300}',
        b'{"set": {"at": 1}}',
        b'{"later": 5}',
    ],
)
def test_a_malformed_body_is_a_400(make_app, body):
    app = make_app()
    before = app.extensions["spiral"].clock.now()
    resp = app.test_client().post("/_test/clock", data=body, content_type="application/json")
    assert resp.status_code == 400, resp.get_data()[:200]
    assert resp.get_json()["error"] == "bad_request" and "advance" in resp.get_json()["message"]
    assert app.extensions["spiral"].clock.now() == before
