"""Config: defaults, then the TOML file, then SPIRAL_* variables, then the caller's mapping, each
through the same typed settings; a bad value is a ConfigError naming where it came from, the setting
and the problem, and never a secret."""

from __future__ import annotations

import pytest

from spiral_web.config import MIN_SECRET, Config, ConfigError, is_loopback

SECRET = "alpha-secret-0123456789abcdef"
OTHER = "beta-secret-0123456789abcdef"
ADMIN = "admin-secret-0123456789abcdef"


@pytest.fixture
def toml(tmp_path):
    """Write a TOML file and return the overrides that load it."""

    def write(text: str) -> dict[str, str]:
        path = tmp_path / "spiral.toml"
        path.write_text(text)
        return {"config_file": str(path)}

    return write


def load(overrides=None, **environ: str) -> Config:
    return Config.load(overrides or {}, environ=environ)


def refused(overrides=None, **environ: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(overrides, **environ)
    return str(info.value)


# -- precedence -----------------------------------------------------------------------------------


def test_defaults_when_nothing_is_set():
    config = load()
    assert (config.host, config.port, config.heartbeat_seconds) == ("127.0.0.1", 5056, 15.0)
    assert config.database_url is None and config.db_path.name == "spiral.sqlite3"


def test_each_layer_overrides_the_one_before(toml):
    file = toml("[spiral]\nheartbeat_seconds = 5\nretry_ms = 100\nport = 6000\n")
    assert load(file).heartbeat_seconds == 5.0
    from_env = load(file, SPIRAL_HEARTBEAT_SECONDS="7.5")
    assert (from_env.heartbeat_seconds, from_env.retry_ms) == (7.5, 100)
    mapped = load({**file, "heartbeat_seconds": 2.0}, SPIRAL_HEARTBEAT_SECONDS="7.5")
    assert (mapped.heartbeat_seconds, mapped.retry_ms, mapped.port) == (2.0, 100, 6000)


def test_spiral_config_names_the_file_and_the_mapping_may_override_it(tmp_path, toml):
    toml("[spiral]\nport = 6001\n")
    assert load(SPIRAL_CONFIG=str(tmp_path / "spiral.toml")).port == 6001
    other = tmp_path / "other.toml"
    other.write_text("[spiral]\nport = 6002\n")
    chosen = load({"config_file": str(other)}, SPIRAL_CONFIG=str(tmp_path / "spiral.toml"))
    assert chosen.port == 6002 and chosen.config_file == str(other)


def test_breath_table_names_map_to_settings(toml):
    config = load(
        toml(
            "[breath]\ninhale = 20\nhold = 10\nexhale = 20\nreturn = 10\nepoch = 3\n"
            'capacity = 50\nquiet_hours = "23:00-06:00"\nquiet_tz = "Europe/Berlin"\n'
        )
    )
    breath = config.breath()
    assert breath.durations == {"inhale": 20.0, "hold": 10.0, "exhale": 20.0, "return": 10.0}
    assert (breath.epoch, breath.capacity, breath.quiet_hours.tz) == (3.0, 50.0, "Europe/Berlin")


def test_other_tables_are_kept_for_the_features_that_read_them(toml):
    config = load(toml("[ws]\nsend_buffer = 4096\n"))
    assert config.extra == {"ws": {"send_buffer": 4096}}


def test_environment_text_is_read_as_the_setting_type():
    config = load(
        SPIRAL_PORT="8080",
        SPIRAL_OPEN="yes",
        SPIRAL_START_TICKER="off",
        SPIRAL_CAPACITY="12.5",
        SPIRAL_SQLITE_SYNC="FULL",
        SPIRAL_REVOKED_TOKENS="old, older",
    )
    assert (config.port, config.open, config.start_ticker) == (8080, True, False)
    assert (config.capacity, config.sqlite_sync) == (12.5, "full")
    assert config.revoked_tokens == ["old", "older"]


def test_an_empty_variable_counts_as_unset(toml):
    config = load(toml("[spiral]\nport = 6000\n"), SPIRAL_PORT="", SPIRAL_REDIS_URL=" ")
    assert config.port == 6000 and config.redis_url is None


# -- type errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, needle",
    [
        pytest.param(
            '[spiral]\nheartbeat_seconds = "soon"\n',
            "[spiral].heartbeat_seconds: input should be a valid number (got 'soon')",
            id="number",
        ),
        # TOML has types: a quoted number is a mistake even where the environment's text is not.
        pytest.param('[spiral]\nport = "80"\n', "[spiral].port: input should be a valid integer"),
        pytest.param('[spiral]\nopen = "yes"\n', "[spiral].open: input should be a valid boolean"),
        pytest.param("[spiral]\nport = 70000\n", "[spiral].port: input should be less than"),
        pytest.param('[spiral]\nsqlite_sync = "often"\n', "[spiral].sqlite_sync: input should be"),
        pytest.param("[breath]\ninhale = 0\n", "[breath].inhale: input should be greater than 0"),
        pytest.param('[breath]\nquiet_hours = "late"\n', "[breath].quiet_hours: quiet hours must"),
        pytest.param('[breath]\nquiet_tz = "Mars/Base"\n', "unknown time zone 'Mars/Base'"),
        pytest.param("[tokens]\npublish = 3\n", "[tokens].publish: input should be a valid dict"),
        pytest.param("[spiral\nport = 1\n", "spiral.toml: ", id="not-toml"),
    ],
)
def test_a_bad_value_in_the_file_names_the_file_and_the_setting(toml, text, needle):
    message = refused(toml(text))
    assert "spiral.toml" in message and needle in message


@pytest.mark.parametrize(
    "environ, needle",
    [
        pytest.param(
            {"SPIRAL_HEARTBEAT_SECONDS": "soon"},
            "SPIRAL_HEARTBEAT_SECONDS: input should be a valid number",
            id="number",
        ),
        pytest.param(
            {"SPIRAL_HEARTBEAT_SECONDS": "inf"},
            "SPIRAL_HEARTBEAT_SECONDS: input should be a finite",
        ),
        pytest.param({"SPIRAL_PORT": "eighty"}, "SPIRAL_PORT: input should be a valid integer"),
        pytest.param({"SPIRAL_OPEN": "maybe"}, "SPIRAL_OPEN: input should be a valid boolean"),
        pytest.param({"SPIRAL_WORKERS": "0"}, "SPIRAL_WORKERS: input should be greater than"),
        pytest.param({"SPIRAL_LOG_LEVEL": "loud"}, "SPIRAL_LOG_LEVEL: input should be"),
        pytest.param({"SPIRAL_BREATH_HOLD": "-8"}, "SPIRAL_BREATH_HOLD: input should be greater"),
        pytest.param({"SPIRAL_QUIET_HOURS": "22-6"}, "SPIRAL_QUIET_HOURS: quiet hours must"),
    ],
)
def test_a_bad_variable_is_named(environ, needle):
    assert needle in refused(**environ)


def test_a_bad_value_in_the_mapping_is_named():
    assert "setting 'port': input should be a valid integer" in refused({"port": "x"})


def test_a_missing_file_is_named(tmp_path):
    message = refused({"config_file": str(tmp_path / "nowhere.toml")})
    assert "nowhere.toml" in message


# -- unknown settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, needle",
    [
        pytest.param(
            "[spiral]\nhaertbeat_seconds = 3\n",
            "unknown setting [spiral].haertbeat_seconds (did you mean heartbeat_seconds?)",
            id="typo",
        ),
        pytest.param("[spiral]\nextra = 1\n", "unknown setting [spiral].extra", id="internal"),
        pytest.param(
            "[breath]\ninhal = 3\n", "unknown setting [breath].inhal (did you mean inhale?)"
        ),
        pytest.param("[tokens]\nwrite = {}\n", "unknown setting [tokens].write"),
        pytest.param('host = "0.0.0.0"\n', "host is outside any table", id="outside-a-table"),
        pytest.param("spiral = 3\n", "spiral must be a table", id="not-a-table"),
    ],
)
def test_an_unknown_setting_in_the_file_is_refused(toml, text, needle):
    assert needle in refused(toml(text))


def test_an_unknown_setting_in_the_mapping_is_refused():
    assert "unknown setting 'heartbeat'" in refused({"heartbeat": 3})


# -- tokens and secrets ---------------------------------------------------------------------------


def test_tokens_from_the_environment_add_to_the_files(toml):
    file = toml(f'[tokens.publish]\nalpha = "{SECRET}"\n[tokens]\nadmin = "{ADMIN}"\n')
    config = load(file, SPIRAL_PUBLISH_TOKENS=f"beta:{OTHER}")
    assert config.publish_tokens == {"alpha": SECRET, "beta": OTHER}
    assert config.admin_token == ADMIN and config.guarded
    assert all(secret not in repr(config) for secret in (SECRET, OTHER, ADMIN))


@pytest.mark.parametrize(
    "environ, needle",
    [
        pytest.param({"SPIRAL_PUBLISH_TOKENS": "alpha"}, "name:secret pairs", id="no-secret"),
        pytest.param(
            {"SPIRAL_PUBLISH_TOKENS": "9lives:" + SECRET},
            "SPIRAL_PUBLISH_TOKENS['9lives']: a token name is",
            id="bad-name",
        ),
        pytest.param({"SPIRAL_READ_TOKENS": "admin:" + SECRET}, "not 'admin'", id="reserved"),
        pytest.param(
            {"SPIRAL_PUBLISH_TOKENS": "a:" + SECRET, "SPIRAL_READ_TOKENS": "b:" + SECRET},
            "read token 'b' has the same secret as publish token 'a'",
            id="shared",
        ),
        pytest.param(
            {"SPIRAL_ADMIN_TOKEN": SECRET, "SPIRAL_SECRET_KEY": SECRET},
            "the same secret",
            id="admin-is-key",
        ),
    ],
)
def test_bad_tokens_are_named_and_their_secrets_are_not(environ, needle):
    message = refused(**environ)
    assert needle in message and SECRET not in message


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("x", id="one-character"),
        pytest.param("s3cret", id="six"),
        pytest.param("a" * 40, id="one-character-repeated"),
        pytest.param("abab" * 10, id="two-characters"),
        pytest.param("0123456789abcde", id=f"{MIN_SECRET - 1}-characters"),
    ],
)
@pytest.mark.parametrize(
    "variable",
    ["SPIRAL_ADMIN_TOKEN", "SPIRAL_SECRET_KEY", "SPIRAL_PUBLISH_TOKENS", "SPIRAL_READ_TOKENS"],
)
def test_weak_secrets_are_refused_with_one_rule(variable, secret):
    value = f"name:{secret}" if variable.endswith("_TOKENS") else secret
    message = refused(**{variable: value})
    assert variable in message and f"at least {MIN_SECRET} characters" in message
    assert secret not in message.replace(variable, "")


def test_a_secret_with_surrounding_spaces_in_the_file_is_refused(toml):
    message = refused(toml(f'[tokens]\nadmin = " {ADMIN}"\n'))
    assert "[tokens].admin: a secret must be" in message and ADMIN not in message


def test_strong_secrets_are_accepted():
    config = load(SPIRAL_ADMIN_TOKEN="0123456789abcdef", SPIRAL_SECRET_KEY=OTHER)
    assert config.admin_token == "0123456789abcdef" and config.secret_key == OTHER


# -- database_url ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["postgresql://spiral:pw@db.example/spiral", "postgres:///spiral"])
def test_database_url_takes_postgresql(url):
    config = load(SPIRAL_DATABASE_URL=url)
    assert config.database_url == url and "pw@" not in repr(config)


def test_database_url_from_the_file(toml):
    url = "postgresql://db.example/spiral"
    assert load(toml(f'[spiral]\ndatabase_url = "{url}"\n')).database_url == url


@pytest.mark.parametrize(
    "url", ["mysql://spiral:pw@db/spiral", "sqlite:///spiral.sqlite3", "db.example/spiral"]
)
def test_database_url_refuses_other_schemes_without_echoing_them(url):
    message = refused(SPIRAL_DATABASE_URL=url)
    assert "SPIRAL_DATABASE_URL: must be a postgresql:// URL" in message and url not in message


# -- where the server listens ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.10", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_addresses_really_listened_on_count_as_well_as_the_host_setting():
    config = load()
    assert config.exposure_problem() is None and config.rate() == (0.0, 0.0)
    config.note_listeners([("127.0.0.1", 5056), ("::", 8000)])
    assert config.public_addresses() == ["[::]:8000"]
    assert "refusing to listen on [::]:8000" in config.exposure_problem()
    assert config.rate() == (200.0, 400.0)


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"open": True}, id="open"),
        pytest.param({"publish_tokens": {"alpha": SECRET}}, id="tokens"),
    ],
)
def test_open_on_purpose_or_with_tokens_is_no_exposure(settings):
    config = load({"host": "0.0.0.0", **settings})
    assert config.exposure_problem() is None
    assert config.rate() == (200.0, 400.0)


def test_the_rate_settings_win_over_the_default():
    config = load({"source_rate": 5, "source_burst": 7})
    assert config.rate() == (5.0, 7.0)
    assert load({"host": "0.0.0.0", "open": True, "source_rate": 0}).rate() == (0.0, 0.0)
