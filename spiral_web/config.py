"""One Config, read from defaults, then an optional TOML file, then SPIRAL_* environment variables,
then (in tests, or from `spiral serve`'s flags) a mapping passed to create_app.

Every layer goes through the same typed fields (pydantic): the file strictly (TOML has types, so
`heartbeat_seconds = "soon"` or `port = "80"` is a mistake), the environment leniently (its values
are text: "15", "1", "off"). A bad value stops start-up with a ConfigError naming the file or the
variable, the setting and the problem, never a secret.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .engine.breath import BreathConfig, QuietHours
from .engine.rituals import RitualSpec, load_rituals

TOKEN_NAME = r"[A-Za-z][A-Za-z0-9_.\-]{0,63}"
MIN_SECRET = 16  # characters, for every secret: tokens of each kind and the session signing key
MIN_DISTINCT = 5  # different characters: "aaaaaaaaaaaaaaaa" is long enough and still a guess


class ConfigError(ValueError):
    """A setting that cannot be used; the message names where it came from and the problem."""


class ExposureError(ConfigError):
    """The server would publish to the network with no tokens (Config.exposure_problem)."""


def _strong_secret(value: str) -> str:
    if value != value.strip() or len(value) < MIN_SECRET or len(set(value)) < MIN_DISTINCT:
        raise ValueError(
            f"a secret must be at least {MIN_SECRET} characters, of at least {MIN_DISTINCT} "
            "different ones, without surrounding spaces (make one with: python -c "
            '"import secrets; print(secrets.token_urlsafe(24))")'
        )
    return value


def _token_name(value: str) -> str:
    if not re.fullmatch(TOKEN_NAME, value) or value == "admin":
        raise ValueError(
            "a token name is a letter then letters, digits, '_', '.' or '-' (at most 64), "
            "and not 'admin'"
        )
    return value


Secret = Annotated[str, AfterValidator(_strong_secret)]
TokenName = Annotated[str, AfterValidator(_token_name)]
Seconds = Annotated[float, Field(gt=0)]


class Config(BaseModel):
    """Spiral's settings. Secrets never appear in repr() or in error messages: only their names."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    data_dir: str = "spiral-data"
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(5056, ge=0, le=65535)
    workers: int = Field(1, ge=1)  # gunicorn workers; more than one needs redis_url
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    # normal: survives a process crash; full (or extra): survives power loss too
    sqlite_sync: Literal["normal", "full", "extra"] = "normal"
    config_file: str | None = None
    max_body_bytes: int = Field(16 * 1024, ge=1)
    heartbeat_seconds: Seconds = 15.0
    retry_ms: int = Field(3000, ge=0)
    hub_capacity: int = Field(8192, ge=1)
    replay_limit: int = Field(10_000, ge=0)
    fake_clock: bool = False  # tests only: a clock moved through a guarded endpoint
    start_ticker: bool = True
    breath_inhale: Seconds = 16.0
    breath_hold: Seconds = 8.0
    breath_exhale: Seconds = 16.0
    breath_return: Seconds = 8.0
    breath_epoch: float = 0.0
    quiet_hours: str | None = None  # e.g. "22:00-06:00"
    quiet_tz: str = "UTC"
    capacity: float = Field(500.0, gt=0)  # glints per second that count as full usage
    # Several hosts, one record: None keeps SQLite in data_dir; postgresql://… selects PostgreSQL.
    database_url: str | None = Field(None, repr=False)  # may hold a password
    redis_url: str | None = Field(None, repr=False)  # joins workers and hosts into one hub
    redis_prefix: str = "spiral:"
    # Access (web/auth.py). Secrets never appear in repr() or logs: only the names do.
    admin_token: Secret | None = Field(None, repr=False)  # admin actions (Bearer or sign-in)
    publish_tokens: dict[TokenName, Secret] = Field(default_factory=dict, repr=False)
    read_tokens: dict[TokenName, Secret] = Field(default_factory=dict, repr=False)
    revoked_tokens: list[str] = Field(default_factory=list)  # names refused though listed
    secret_key: Secret | None = Field(None, repr=False)  # signs sessions; else kept in data_dir
    secure_cookies: bool = False  # behind HTTPS: the cookie goes over HTTPS only
    open: bool = False  # no publish tokens beyond loopback, on purpose
    # Limits (web/security.py)
    source_rate: float | None = Field(None, ge=0)  # glints/s per source; None: see rate()
    source_burst: int | None = Field(None, ge=1)  # bucket size; None: twice the rate
    max_subscribers: int = Field(15_000, ge=0)  # SSE + WebSocket per process; more get 503
    # Streams one client (a token's name, or an anonymous client's address) may hold in one
    # process; None: half of max_subscribers.
    max_subscribers_per_client: int | None = Field(None, ge=1)
    body_timeout: Seconds = 10.0  # a request body must arrive whole within this (else 408)
    # Host names requests may name (DNS rebinding, web/gate.py): "name", ".name" or "*.name"
    # (the name and its subdomains), "*" (any). Loopback names and addresses always pass.
    allowed_hosts: list[str] = Field(default_factory=list)
    send_timeout: Seconds = 10.0  # an SSE write making no progress this long drops the stream
    extra: dict[str, Any] = Field(default_factory=dict)  # TOML tables later features read

    # The addresses the server was seen listening on (server.listening_addresses), beside `host`.
    _listeners: set[tuple[str, int]] = PrivateAttr(default_factory=set)

    @field_validator("sqlite_sync", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        if value is not None:
            QuietHours.parse(value)
        return value

    @field_validator("quiet_tz")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {value!r} (e.g. 'Europe/Berlin')") from None
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: list[str]) -> list[str]:
        for entry in value:
            name = entry[2:] if entry.startswith("*.") else entry.removeprefix(".")
            if entry != "*" and not (_HOST_NAME.fullmatch(name) or _is_bracketed_v6(entry)):
                raise ValueError(
                    f"{entry!r} is not a host name: give names without scheme or port, "
                    "e.g. spiral.example.org, .example.org (and its subdomains), or * (any)"
                )
        return [entry.lower().rstrip(".") for entry in value]

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        scheme = value.partition("://")[0].lower() if value and "://" in value else None
        if value is not None and scheme not in ("postgresql", "postgres"):
            raise ValueError(
                "must be a postgresql:// URL; leave it unset to keep SQLite in data_dir"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        scheme = value.partition("://")[0].lower() if value and "://" in value else None
        if value is not None and scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _one_secret_each(self) -> Config:
        seen: dict[str, str] = {}
        named = [("the admin token", self.admin_token), ("the secret key", self.secret_key)]
        named += [(f"publish token {n!r}", s) for n, s in self.publish_tokens.items()]
        named += [(f"read token {n!r}", s) for n, s in self.read_tokens.items()]
        for name, secret in named:
            if secret is None:
                continue
            if secret in seen:
                raise ValueError(
                    f"{name} has the same secret as {seen[secret]}; each token needs its own"
                )
            seen[secret] = name
        return self

    @property
    def db_path(self) -> Path:
        return Path(self.data_dir) / "spiral.sqlite3"

    @property
    def guarded(self) -> bool:
        """Any token configured: from then on, whatever needs a token and has none is refused."""
        return bool(self.admin_token or self.publish_tokens or self.read_tokens)

    def note_listeners(self, addresses: Iterable[tuple[str, int]]) -> None:
        """Record addresses the server really listens on, however it was started (a gunicorn
        -b flag or GUNICORN_CMD_ARGS bind beyond `host`): exposure and rate limits count them."""
        self._listeners.update((host, port) for host, port in addresses)

    def public_addresses(self) -> list[str]:
        """The addresses beyond loopback this server listens on: `host`, and what it was seen
        listening on."""
        found = [] if is_loopback(self.host) else [self.host]
        for host, port in sorted(self._listeners):
            if not is_loopback(host):
                found.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return found

    def rate(self) -> tuple[float, float]:
        """(glints per second, burst) allowed per source; (0, 0) when off. By default on (200/s,
        burst 400) for a server that has tokens or listens beyond loopback, off for a local one."""
        rate = self.source_rate
        if rate is None:
            rate = 200.0 if (self.guarded or self.public_addresses()) else 0.0
        if rate <= 0:
            return 0.0, 0.0
        return float(rate), float(self.source_burst or max(1.0, 2 * rate))

    def exposure_problem(self) -> str | None:
        """Why this server must not run (publishing wide open beyond loopback, or its test-only
        clock reachable from the network), or None."""
        public = self.public_addresses()
        if public and self.fake_clock:
            return (
                f"refusing to listen on {', '.join(public)} with SPIRAL_FAKE_CLOCK on: it lets "
                "callers move the hub's clock (a test-only switch). Turn it off, or bind 127.0.0.1."
            )
        if not public or self.publish_tokens or self.open:
            return None
        return (
            f"refusing to listen on {', '.join(public)} with no publish tokens: anyone who can "
            'reach it could publish. Configure tokens (SPIRAL_PUBLISH_TOKENS="name:secret,..." '
            "or a [tokens.publish] table in the TOML file, and SPIRAL_ADMIN_TOKEN for admin "
            "actions), bind 127.0.0.1, or run open on purpose with --open or SPIRAL_OPEN=1."
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
        """Defaults, then the TOML file (overrides' config_file, else SPIRAL_CONFIG), then SPIRAL_*
        variables, then `overrides`; raise ConfigError on the first layer with a bad setting."""
        env = os.environ if environ is None else environ
        overrides = dict(overrides or {})
        values: dict[str, Any] = {}
        path = overrides.get("config_file") or env.get("SPIRAL_CONFIG")
        if path:
            layer, origin = _toml_layer(Path(path))
            values.update(cls._checked(layer, origin, str(path), strict=True))
        layer, origin = _env_layer(env)
        for name, value in cls._checked(layer, origin, "the environment").items():
            if name in ("publish_tokens", "read_tokens"):  # tokens from the environment add up
                value = {**values.get(name, {}), **value}
            values[name] = value
        unknown = sorted(set(overrides) - set(cls.model_fields))
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}{_suggestion(unknown[0], FIELDS)}")
        origin = {name: f"setting {name!r}" for name in overrides}
        values.update(cls._checked(overrides, origin, "settings"))
        config = cls._checked_model(values, {}, "configuration")
        config.breath()  # validate now: a bad breath setting stops start-up with a clear message
        config.rituals()  # likewise a bad ritual (RitualConfigError names file, ritual and problem)
        return config

    @classmethod
    def _checked(
        cls, layer: Mapping[str, Any], origin: Mapping[str, str], source: str, strict: bool = False
    ) -> dict[str, Any]:
        """The layer's settings, each validated and converted by its field."""
        config = cls._checked_model(layer, origin, source, strict)
        return {name: getattr(config, name) for name in layer}

    @classmethod
    def _checked_model(
        cls, layer: Mapping[str, Any], origin: Mapping[str, str], source: str, strict: bool = False
    ) -> Config:
        try:
            return cls.model_validate(layer, strict=strict)
        except ValidationError as exc:
            raise ConfigError(
                "; ".join(_describe(e, origin, source) for e in exc.errors())
            ) from None


FIELDS = frozenset(Config.model_fields)
# Where a value may hold a secret: never echoed back in an error message.
SENSITIVE = frozenset(
    {"admin_token", "publish_tokens", "read_tokens", "secret_key", "database_url", "redis_url"}
)
# Set by the file's own tables or the caller only, never by [spiral] nor a SPIRAL_* variable.
_NOT_PLAIN = frozenset({"extra", "config_file"})
_BREATH_KEYS = {
    "inhale": "breath_inhale",
    "hold": "breath_hold",
    "exhale": "breath_exhale",
    "return": "breath_return",
    "epoch": "breath_epoch",
    "quiet_hours": "quiet_hours",
    "quiet_tz": "quiet_tz",
    "capacity": "capacity",
}
_TOKEN_KEYS = {
    "publish": "publish_tokens",
    "read": "read_tokens",
    "revoked": "revoked_tokens",
    "admin": "admin_token",
}


def _toml_layer(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The file's settings by field name, and where in the file each one is."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    values: dict[str, Any] = {"config_file": str(path)}
    origin: dict[str, str] = {"config_file": f"{path}: its name"}
    sections = {"spiral": None, "breath": _BREATH_KEYS, "tokens": _TOKEN_KEYS}
    for section, keys in sections.items():
        table = data.pop(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section} must be a table, [{section}]")
        for key, value in table.items():
            if keys is None:
                name = key if key in FIELDS - _NOT_PLAIN else None
            else:
                name = keys.get(key)
            if name is None:
                hint = _suggestion(key, FIELDS - _NOT_PLAIN if keys is None else keys)
                raise ConfigError(f"{path}: unknown setting [{section}].{key}{hint}")
            values[name] = value
            origin[name] = f"{path}: [{section}].{key}"
    loose = [key for key, value in data.items() if not isinstance(value, dict)]
    if loose:
        raise ConfigError(
            f"{path}: {loose[0]} is outside any table; settings go under [spiral], [breath] "
            "or [tokens]"
        )
    values["extra"] = data  # [rituals.*], [ws] and whatever later features read
    origin["extra"] = f"{path}: its other tables"
    return values, origin


def _env_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """SPIRAL_<SETTING> variables by field name; an empty variable counts as unset."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name in sorted(FIELDS - _NOT_PLAIN):
        var = "SPIRAL_" + name.upper()
        raw = env.get(var, "").strip()
        if not raw:
            continue
        origin[name] = var
        items = [item.strip() for item in raw.split(",") if item.strip()]
        if name in ("publish_tokens", "read_tokens"):  # "name:secret,name2:secret2"
            if not all(":" in item for item in items):
                raise ConfigError(f"{var} must be name:secret pairs separated by commas")
            pairs = (item.partition(":") for item in items)
            values[name] = {key.strip(): secret.strip() for key, _, secret in pairs}
        elif name in ("revoked_tokens", "allowed_hosts"):  # "name,name2"
            values[name] = items
        else:
            values[name] = raw
    return values, origin


def _describe(error: Any, origin: Mapping[str, str], source: str) -> str:
    """One pydantic error as `where: problem (got …)`, never showing a secret."""
    loc = error["loc"]
    if not loc:  # a check across settings (the same secret twice)
        where = source
    else:
        where = origin.get(loc[0], str(loc[0]))
        where += "".join(f"[{part!r}]" for part in loc[1:] if part != "[key]")
    if error["type"] == "value_error":  # ours: the message says all, and names no secret
        return f"{where}: {error['ctx']['error']}"
    problem = error["msg"][:1].lower() + error["msg"][1:]
    if loc and loc[0] not in SENSITIVE and len(loc) == 1 and not isinstance(error["input"], dict):
        problem += f" (got {_short(error['input'])})"
    return f"{where}: {problem}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggestion(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?"
)


def _is_bracketed_v6(entry: str) -> bool:
    if not (entry.startswith("[") and entry.endswith("]")):
        return False
    try:
        ipaddress.IPv6Address(entry[1:-1])
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
