"""The configured secrets, and the principal each stands for."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from flask import current_app

from ...config import Config
from ..errors import Forbidden

RANK = {"read": 0, "publish": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a token's name and kind, and how it was given."""

    name: str
    role: str  # read | publish | admin
    via: str  # bearer | query | session | form

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


class Tokens:
    """The configured secrets. Built once per app from the Config; read-only afterwards."""

    def __init__(self, config: Config, key: bytes) -> None:
        self._key = key
        entries: list[tuple[str, str, bytes]] = []
        if config.admin_token:
            entries.append(("admin", "admin", config.admin_token.encode()))
        entries += [(n, "publish", s.encode()) for n, s in config.publish_tokens.items()]
        entries += [(n, "read", s.encode()) for n, s in config.read_tokens.items()]
        self._entries = entries
        self._by_name = {name: (role, secret) for name, role, secret in entries}
        self.revoked = frozenset(config.revoked_tokens)
        self.guarded = config.guarded
        self.admin_configured = bool(config.admin_token) and "admin" not in self.revoked
        self.publish_required = bool(config.publish_tokens)
        self.read_required = bool(config.read_tokens)

    def identify(self, given: str, via: str) -> Principal:
        """The principal a secret stands for; Forbidden when it is unknown or revoked."""
        raw = given.encode()
        found: tuple[str, str] | None = None
        for name, role, secret in self._entries:  # every entry, every time: no early exit
            if hmac.compare_digest(raw, secret):
                found = (name, role)
        if found is None:
            raise Forbidden("the token is not valid")
        name, role = found
        if name in self.revoked:
            raise Forbidden(f"the token {name!r} has been revoked", "token_revoked")
        return Principal(name, role, via)

    def fingerprint(self, name: str) -> str | None:
        """A keyed digest of a token's secret: a session holds it, never the secret."""
        entry = self._by_name.get(name)
        if entry is None:
            return None
        return hmac.new(self._key, entry[1], hashlib.sha256).hexdigest()[:32]

    def from_session(self, who: Any) -> Principal | None:
        """The session's principal if its token is still configured, unchanged and not revoked."""
        if not isinstance(who, dict):
            return None
        name, role, fp = who.get("name"), who.get("role"), who.get("fp")
        if not isinstance(name, str) or name in self.revoked or name not in self._by_name:
            return None
        if role != self._by_name[name][0] or not isinstance(fp, str):
            return None
        expected = self.fingerprint(name) or ""
        if not hmac.compare_digest(fp.encode(), expected.encode()):
            return None
        return Principal(name, role, "session")


def tokens() -> Tokens:
    """This app's token table."""
    return current_app.extensions["spiral.tokens"]
