"""One Config, read from defaults, then an optional TOML file, then SPIRAL_* environment variables,
then (in tests) a mapping passed to create_app."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .engine.breath import BreathConfig, QuietHours
from .engine.rituals import RitualSpec, load_rituals


@dataclass
class Config:
    data_dir: str = "spiral-data"
    host: str = "127.0.0.1"
    port: int = 5056
    sqlite_sync: str = "normal"  # normal: survives a process crash; full: survives power loss too
    config_file: str | None = None
    max_body_bytes: int = 16 * 1024
    heartbeat_seconds: float = 15.0
    retry_ms: int = 3000
    hub_capacity: int = 8192
    replay_limit: int = 10_000
    fake_clock: bool = False  # tests only: a clock moved through a guarded endpoint
    start_ticker: bool = True
    breath_inhale: float = 16.0
    breath_hold: float = 8.0
    breath_exhale: float = 16.0
    breath_return: float = 8.0
    breath_epoch: float = 0.0
    quiet_hours: str | None = None  # e.g. "22:00-06:00"
    quiet_tz: str = "UTC"
    capacity: float = 500.0  # glints per second that count as full usage
    redis_url: str | None = None  # joins workers and hosts into one hub (SPIRAL_REDIS_URL)
    redis_prefix: str = "spiral:"
    admin_token: str | None = field(default=None, repr=False)  # admin actions (Bearer or sign-in)
    # Access (web/auth.py). Secrets never appear in repr() or logs: only the names do.
    publish_tokens: dict[str, str] = field(default_factory=dict, repr=False)  # name -> secret
    read_tokens: dict[str, str] = field(default_factory=dict, repr=False)  # name -> secret
    revoked_tokens: list[str] = field(default_factory=list)  # names refused though listed
    secret_key: str | None = field(
        default=None, repr=False
    )  # signs sessions; else kept in data_dir
    secure_cookies: bool = False  # behind HTTPS: the cookie goes over HTTPS only
    open: bool = False  # no publish tokens beyond loopback, on purpose
    # Limits (web/security.py)
    source_rate: float | None = None  # glints/s per source; None: see rate()
    source_burst: int | None = None  # bucket size; None: twice the rate
    max_subscribers: int = 15_000  # SSE + WebSocket subscribers per process; more get 503
    send_timeout: float = 10.0  # an SSE write that makes no progress for this long drops the stream
    extra: dict[str, Any] = field(default_factory=dict)  # TOML tables later features read

    @property
    def db_path(self) -> Path:
        return Path(self.data_dir) / "spiral.sqlite3"

    @property
    def guarded(self) -> bool:
        """Any token configured: from then on, whatever needs a token and has none is refused."""
        return bool(self.admin_token or self.publish_tokens or self.read_tokens)

    def rate(self) -> tuple[float, float]:
        """(glints per second, burst) allowed per source; (0, 0) when off. By default on (200/s,
        burst 400) for a server that has tokens or listens beyond loopback, off for a local one."""
        rate = self.source_rate
        if rate is None:
            rate = 200.0 if (self.guarded or not is_loopback(self.host)) else 0.0
        if rate <= 0:
            return 0.0, 0.0
        return float(rate), float(self.source_burst or max(1.0, 2 * rate))

    def exposure_problem(self) -> str | None:
        """Why this configuration must not start (publishing wide open beyond loopback), or None."""
        if is_loopback(self.host) or self.publish_tokens or self.open:
            return None
        return (
            f"refusing to listen on {self.host} with no publish tokens: anyone who can reach it "
            'could publish. Configure tokens (SPIRAL_PUBLISH_TOKENS="name:secret,..." or a '
            "[tokens.publish] table in the TOML file, and SPIRAL_ADMIN_TOKEN for admin actions), "
            "bind 127.0.0.1, or run open on purpose with --open or SPIRAL_OPEN=1."
        )

    def rituals(self) -> list[RitualSpec]:
        """The built-in rituals and the file's [rituals.<name>] tables, checked and compiled."""
        return load_rituals(self.extra.get("rituals"), self.config_file or "configuration")

    def breath(self) -> BreathConfig:
        return BreathConfig(
            durations={
                "inhale": self.breath_inhale,
                "hold": self.breath_hold,
                "exhale": self.breath_exhale,
                "return": self.breath_return,
            },
            epoch=self.breath_epoch,
            quiet_hours=QuietHours.parse(self.quiet_hours, self.quiet_tz)
            if self.quiet_hours
            else None,
            capacity=self.capacity,
        )

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Config:
        env = os.environ if environ is None else environ
        overrides = dict(overrides or {})
        cfg = cls()
        path = overrides.get("config_file") or env.get("SPIRAL_CONFIG")
        if path:
            cfg._apply_toml(Path(path))
        for f in fields(cls):
            key = "SPIRAL_" + f.name.upper()
            if f.name != "extra" and key in env:
                value = _coerce(f.type, env[key], key)
                if isinstance(value, dict):  # tokens from the environment add to the file's
                    value = {**getattr(cfg, f.name), **value}
                setattr(cfg, f.name, value)
        for name, value in overrides.items():
            if not hasattr(cfg, name):
                raise KeyError(f"unknown setting {name!r}")
            setattr(cfg, name, value)
        cfg._check_tokens()
        cfg.breath()  # validate now: a bad breath setting stops start-up with a clear message
        cfg.rituals()  # likewise a bad ritual (RitualConfigError names file, ritual and problem)
        return cfg

    def _apply_toml(self, path: Path) -> None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc
        self.config_file = str(path)
        spiral = data.pop("spiral", {})
        breath = data.pop("breath", {})
        tokens = data.pop("tokens", {})
        for name, value in tokens.items():  # [tokens.publish], [tokens.read], revoked, admin
            attr = {
                "publish": "publish_tokens",
                "read": "read_tokens",
                "revoked": "revoked_tokens",
                "admin": "admin_token",
            }.get(name)
            if attr is None:
                raise ValueError(
                    f"{path}: unknown setting [tokens].{name}; expected publish, "
                    "read, revoked or admin"
                )
            setattr(self, attr, value)
        for name, value in spiral.items():
            if not hasattr(self, name) or name == "extra":
                raise ValueError(f"{path}: unknown setting [spiral].{name}")
            setattr(self, name, value)
        for name, value in breath.items():
            attr = {
                "quiet_hours": "quiet_hours",
                "quiet_tz": "quiet_tz",
                "epoch": "breath_epoch",
                "capacity": "capacity",
            }.get(name, f"breath_{name}")
            if not hasattr(self, attr):
                raise ValueError(f"{path}: unknown setting [breath].{name}")
            setattr(self, attr, value)
        self.extra = data

    def _check_tokens(self) -> None:
        """Token names and secrets are well formed and unambiguous; a clear error names the problem
        (never the secret)."""
        seen: dict[str, str] = {}
        if self.admin_token is not None:
            if not isinstance(self.admin_token, str) or not self.admin_token.strip():
                raise ValueError("admin_token must be a non-empty string")
            seen[self.admin_token] = "admin"
        for kind in ("publish", "read"):
            table = getattr(self, f"{kind}_tokens")
            if not isinstance(table, dict):
                raise ValueError(f'[tokens.{kind}] must be a table of name = "secret"')
            for name, secret in table.items():
                where = f"[tokens.{kind}].{name}"
                if (
                    not isinstance(name, str)
                    or not re.fullmatch(TOKEN_NAME, name)
                    or name == "admin"
                ):
                    raise ValueError(
                        f"{where}: a token name is a letter then letters, digits, "
                        "'_', '.' or '-' (at most 64), and not 'admin'"
                    )
                if (
                    not isinstance(secret, str)
                    or len(secret) < MIN_SECRET
                    or secret != secret.strip()
                ):
                    raise ValueError(
                        f"{where}: the secret must be a string of at least "
                        f"{MIN_SECRET} characters without surrounding spaces"
                    )
                if secret in seen:
                    raise ValueError(
                        f"{where}: the same secret is also given to {seen[secret]!r}; "
                        "each token needs its own"
                    )
                seen[secret] = name
        if not isinstance(self.revoked_tokens, list) or not all(
            isinstance(n, str) for n in self.revoked_tokens
        ):
            raise ValueError("[tokens].revoked must be a list of token names")


TOKEN_NAME = r"[A-Za-z][A-Za-z0-9_.\-]{0,63}"
MIN_SECRET = 16


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _coerce(kind: Any, raw: str, key: str) -> Any:
    text = str(kind)
    if text.startswith("dict"):  # SPIRAL_PUBLISH_TOKENS="name:secret,name2:secret2"
        pairs = [item.strip() for item in raw.split(",") if item.strip()]
        if not all(":" in item for item in pairs):
            raise ValueError(f"{key} must be name:secret pairs separated by commas")
        split = (p.partition(":") for p in pairs)
        return {name.strip(): secret.strip() for name, _, secret in split}
    if text.startswith("list"):  # SPIRAL_REVOKED_TOKENS="name,name2"
        return [item.strip() for item in raw.split(",") if item.strip()]
    try:
        if "bool" in text:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if text.startswith("int"):
            return int(raw)
        if text.startswith("float"):
            return float(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a valid {text}") from None
    return raw
