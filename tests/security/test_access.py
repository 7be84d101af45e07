"""Who may call what is declared on each view (web/access.py). Every route is listed here with its
declaration: a route added without one fails the first test, and a change of access shows in the
diff of this file. A view that declares nothing is refused, whoever asks."""

from __future__ import annotations

import logging

import pytest

from spiral_web.web.access import Access, access, declared

from .conftest import ADMIN, bearer

# rule, methods -> role and flags (Access.describe). HEAD and OPTIONS come with GET and any route.
ROUTES = {
    ("/", "GET"): "read page",
    ("/_test/clock", "POST"): "admin",
    ("/api/admin/climate", "POST"): "admin json_only",
    ("/api/admin/phase", "POST"): "admin json_only",
    ("/api/archive", "GET"): "read",
    ("/api/breath", "GET"): "read",
    ("/api/glints", "GET"): "read",
    ("/api/glints/<glint_id>", "GET"): "read",
    ("/api/glints/<glint_id>/lineage", "GET"): "read",
    ("/api/openapi.json", "GET"): "public",
    ("/api/operators/clients", "GET"): "admin",
    ("/api/operators/protection", "GET"): "read",
    ("/api/operators/refusals", "GET"): "admin",
    ("/api/operators/throttle/end", "POST"): "admin",
    ("/api/operators/unblock", "POST"): "admin json_only",
    ("/api/rituals", "GET"): "read",
    ("/api/rituals/<name>/dry-run", "POST"): "admin",
    ("/api/rituals/<name>/invoke", "POST"): "admin",
    ("/api/rituals/history", "GET"): "read",
    ("/api/stats", "GET"): "read",
    ("/auth/sign-in", "GET"): "public page",
    ("/auth/sign-in", "POST"): "public page rate_limited",
    ("/auth/sign-out", "POST"): "public page",
    ("/dashboard/admin", "POST"): "admin page token_field",
    ("/dashboard/console", "GET"): "admin page",
    ("/dashboard/emit", "POST"): "publish page rate_limited",
    ("/dashboard/glints", "GET"): "read page",
    ("/dashboard/glints/<glint_id>", "GET"): "read page",
    ("/dashboard/glints/<glint_id>/republish", "POST"): "publish page rate_limited",
    ("/dashboard/history", "GET"): "read page",
    ("/dashboard/protection", "GET"): "read page",
    ("/dashboard/protection", "POST"): "admin page token_field",
    ("/dashboard/rituals", "GET"): "read page",
    ("/dashboard/rituals/<name>/invoke", "POST"): "admin page token_field",
    ("/dashboard/rules", "GET"): "admin page",
    ("/dashboard/stream", "GET"): "read stream=sse",
    ("/dashboard/timeline", "GET"): "read page",
    ("/healthz", "GET"): "public",
    ("/metrics", "GET"): "public",
    ("/readyz", "GET"): "public",
    ("/static/<path:filename>", "GET"): "public",
    ("/stream", "GET"): "read stream=sse",
    ("/stream/glint", "POST"): "publish json_only rate_limited",
    ("/ws", "GET"): "read stream=websocket",
}


def test_every_route_declares_its_access(app):
    found = {}
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            declaration = declared(rule.endpoint)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                found[(rule.rule, method)] = declaration.describe() if declaration else None
    assert found == ROUTES


def _add_routes(app) -> None:
    """Two routes that forgot: one with no declaration, one declared above its route decorator
    (the registered view is then not the one that checks the content type, and carries none)."""
    app.add_url_rule("/forgotten", "forgotten", lambda: "served open")

    @access("public", json_only=True)
    @app.post("/upside-down")
    def upside_down():
        return "served open"


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({}, id="open-hub"),
        pytest.param({"admin_token": ADMIN}, id="guarded-hub"),
    ],
)
def test_a_route_that_declares_nothing_is_refused(make_app, settings, caplog):
    app = make_app(**settings)
    _add_routes(app)
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="spiral_web.web.auth.guard"):
        for resp in (
            client.get("/forgotten"),
            client.get("/forgotten", headers=bearer(ADMIN)),
            client.post("/upside-down", headers=bearer(ADMIN)),
        ):
            assert resp.status_code == 403
            assert resp.get_json()["error"] == "forbidden"
            assert "served open" not in resp.text
    assert "forgotten declares no access" in caplog.text


def test_a_declaration_reads_as_its_flags():
    assert Access("publish", json_only=True, rate_limited=True).describe() == (
        "publish json_only rate_limited"
    )
    assert Access("read", stream="websocket").describe() == "read stream=websocket"
    with pytest.raises(ValueError):
        access("read", token_field=True)
