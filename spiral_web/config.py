"""One Config, read from defaults, then an optional TOML file, then SPIRAL_* environment variables,
then (in tests) a mapping passed to create_app."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

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
    admin_token: str | None = None  # when set, admin actions need `Authorization: Bearer <token>`
    extra: dict[str, Any] = field(default_factory=dict)  # TOML tables later features read

    @property
    def db_path(self) -> Path:
        return Path(self.data_dir) / "spiral.sqlite3"

    def rituals(self) -> list[RitualSpec]:
        """The built-in rituals and the file's [rituals.<name>] tables, checked and compiled."""
        return load_rituals(self.extra.get("rituals"), self.config_file or "configuration")

    def breath(self) -> BreathConfig:
        return BreathConfig(
            durations={
                "inhale": self.breath_inhale, "hold": self.breath_hold,
                "exhale": self.breath_exhale, "return": self.breath_return,
            },
            epoch=self.breath_epoch,
            quiet_hours=QuietHours.parse(self.quiet_hours, self.quiet_tz) if self.quiet_hours else None,
            capacity=self.capacity,
        )

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> "Config":
        env = os.environ if environ is None else environ
        overrides = dict(overrides or {})
        cfg = cls()
        path = overrides.get("config_file") or env.get("SPIRAL_CONFIG")
        if path:
            cfg._apply_toml(Path(path))
        for f in fields(cls):
            key = "SPIRAL_" + f.name.upper()
            if f.name != "extra" and key in env:
                setattr(cfg, f.name, _coerce(f.type, env[key], key))
        for name, value in overrides.items():
            if not hasattr(cfg, name):
                raise KeyError(f"unknown setting {name!r}")
            setattr(cfg, name, value)
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
        for name, value in spiral.items():
            if not hasattr(self, name) or name == "extra":
                raise ValueError(f"{path}: unknown setting [spiral].{name}")
            setattr(self, name, value)
        for name, value in breath.items():
            attr = {"quiet_hours": "quiet_hours", "quiet_tz": "quiet_tz", "epoch": "breath_epoch",
                    "capacity": "capacity"}.get(name, f"breath_{name}")
            if not hasattr(self, attr):
                raise ValueError(f"{path}: unknown setting [breath].{name}")
            setattr(self, attr, value)
        self.extra = data


def _coerce(kind: Any, raw: str, key: str) -> Any:
    text = str(kind)
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
