"""A page of another site cannot get local publishers blocked (issue 10, item 2): any page can make
a browser send requests the hub refuses (a `fetch(..., {mode: "no-cors"})` POST, an <img> GET of a
guarded route), from the address of the very machine the publishers run on. Refused as
cross-origin, they are not rejections of that source: the climate stays clear and the publishers
are served."""

from __future__ import annotations

import pytest

from .conftest import READ, bearer

NO_CORS_POST = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
OLD_BROWSER_POST = {"Origin": "https://evil.example"}  # no fetch metadata: the Origin decides
IMG_GET = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}


@pytest.mark.parametrize("address", ["127.0.0.1", "192.0.2.7"], ids=["loopback", "lan"])
@pytest.mark.parametrize("headers", [NO_CORS_POST, OLD_BROWSER_POST], ids=["fetch", "origin"])
def test_refused_cross_origin_posts_do_not_count_against_the_source(make_app, address, headers):
    app = make_app()
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    for _ in range(60):
        resp = client.post(
            "/stream/glint",
            data=b'{"module": "evil.page"}',
            content_type="text/plain",
            headers={**headers, "Sec-Fetch-Mode": "no-cors"},
        )
        assert resp.status_code == 403 and resp.get_json()["error"] == "cross_origin"
        form = client.post("/dashboard/emit", data={"module": "evil.form"}, headers=headers)
        assert form.status_code == 403
    assert client.post("/stream/glint", json={"module": "local.sensor"}).status_code == 201
    assert client.get("/api/breath").get_json()["climate"] == "clear"
    assert app.extensions["spiral"].breath.state().climate == "clear"


def test_refused_cross_origin_reads_do_not_count_either(make_app):
    """With read tokens, an <img> on any page gets 401s from the API and the dashboard."""
    app = make_app(read_tokens=dict(READ))
    client = app.test_client()
    for _ in range(60):
        assert client.get("/api/stats", headers=IMG_GET).status_code == 401
        assert client.get("/", headers=IMG_GET).status_code == 303  # to sign in
    reader = bearer(READ["watcher"])
    resp = client.post("/stream/glint", json={"module": "local.sensor"}, headers=reader)
    assert resp.status_code == 201
    assert app.extensions["spiral"].breath.state().climate == "clear"


def test_the_same_refusals_from_this_site_still_count(make_app):
    """A client of its own that keeps sending bad glints is still what the climate watches."""
    app = make_app()
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "192.0.2.8"
    for _ in range(60):
        assert client.post("/stream/glint", json={"module": "Not Valid"}).status_code == 422
    assert app.extensions["spiral"].breath.state().climate != "clear"
