"""Fixtures and helpers for the security and reliability tests: apps with tokens, and the CSRF
token a page hands a client."""

from __future__ import annotations

import re
from typing import Any

import pytest

from spiral_web import create_app

ADMIN = "admin-secret-0123456789abcdef"
PUBLISH = {"alpha": "alpha-secret-0123456789abcdef", "beta": "beta-secret-0123456789abcdef"}
READ = {"watcher": "watcher-secret-0123456789abcdef"}
REVOKED = {"gamma": "gamma-secret-0123456789abcdef", "old-reader": "old-reader-secret-0123456789ab"}


def guarded_config(tmp_path, **extra: Any) -> dict[str, Any]:
    """Every kind of token configured; `gamma` (publish) and `old-reader` (read) are revoked."""
    return {
        "data_dir": str(tmp_path / "data"),
        "fake_clock": True,
        "start_ticker": False,
        "admin_token": ADMIN,
        "publish_tokens": {**PUBLISH, "gamma": REVOKED["gamma"]},
        "read_tokens": {**READ, "old-reader": REVOKED["old-reader"]},
        "revoked_tokens": ["gamma", "old-reader"],
        "heartbeat_seconds": 0.05,
        **extra,
    }


@pytest.fixture
def guarded(tmp_path):
    app = create_app(guarded_config(tmp_path))
    yield app
    app.extensions["spiral"].close()


def csrf_of(client, path: str = "/auth/sign-in") -> str:
    """The CSRF token a page hands this client's session (from the hidden field)."""
    text = client.get(path).text
    found = re.search(r'name="csrf_token" value="([^"]+)"', text) or re.search(
        r'"X-CSRF-Token": "([^"]+)"', text
    )  # base.html, for htmx
    assert found, "the page carries no CSRF field"
    return found.group(1)


def sign_in(client, token: str) -> Any:
    return client.post(
        "/auth/sign-in", data={"token": token, "csrf_token": csrf_of(client), "next": "/"}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
