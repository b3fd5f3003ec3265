"""Settings from the environment: every variable of API.md "Running", secrets hidden in repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.settings import DEFAULT_RETRY_SCHEDULE, Settings, SettingsError


def test_defaults_match_api_md() -> None:
    """With nothing set, each setting has the default API.md names."""
    s = Settings.from_env({})
    assert s.redis_url is None
    assert s.data_dir == Path("./var/alerthub")
    assert s.bootstrap_token is None
    assert s.allow_private_webhooks is False
    assert (
        s.retry_schedule
        == DEFAULT_RETRY_SCHEDULE
        == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    )
    assert (s.max_body_bytes, s.rate_limit_per_minute) == (262144, 600)
    assert (s.dedup_window_s, s.feed_retention, s.log_level) == (604800, 100000, "info")
    assert s.appendfsync == "everysec"


def test_every_variable_is_read() -> None:
    """Each ALERTHUB_* variable reaches its setting."""
    s = Settings.from_env(
        {
            "ALERTHUB_REDIS_URL": "redis://:pw@db:6379/0",
            "ALERTHUB_DATA_DIR": "/tmp/x",
            "ALERTHUB_BOOTSTRAP_TOKEN": "op-secret",
            "ALERTHUB_ALLOW_PRIVATE_WEBHOOKS": "true",
            "ALERTHUB_RETRY_SCHEDULE": "0,1,2",
            "ALERTHUB_MAX_BODY_BYTES": "4096",
            "ALERTHUB_RATE_LIMIT_PER_MINUTE": "5",
            "ALERTHUB_DEDUP_WINDOW_S": "60",
            "ALERTHUB_FEED_RETENTION": "10",
            "ALERTHUB_LOG_LEVEL": "DEBUG",
            "ALERTHUB_APPENDFSYNC": "Always",
            "ALERTHUB_ROLE": "Delivery",
        }
    )
    assert s.redis_url == "redis://:pw@db:6379/0" and s.data_dir == Path("/tmp/x")
    assert s.bootstrap_token == "op-secret" and s.allow_private_webhooks
    assert s.retry_schedule == (0, 1, 2) and s.max_body_bytes == 4096
    assert (s.rate_limit_per_minute, s.dedup_window_s, s.feed_retention) == (5, 60, 10)
    assert s.log_level == "debug" and s.appendfsync == "always"
    assert s.role == "delivery" and Settings.from_env({}).role == "all"


def test_repr_hides_secrets() -> None:
    """The bootstrap token and a Redis password never appear in repr."""
    s = Settings.from_env(
        {"ALERTHUB_BOOTSTRAP_TOKEN": "op-secret", "ALERTHUB_REDIS_URL": "redis://user:pw@db:6379/0"}
    )
    assert "op-secret" not in repr(s) and ":pw@" not in repr(s)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALERTHUB_MAX_BODY_BYTES", "lots"),
        ("ALERTHUB_RATE_LIMIT_PER_MINUTE", "0"),
        ("ALERTHUB_ALLOW_PRIVATE_WEBHOOKS", "maybe"),
        ("ALERTHUB_RETRY_SCHEDULE", "0,-5"),
        ("ALERTHUB_LOG_LEVEL", "loud"),
        ("ALERTHUB_APPENDFSYNC", "sometimes"),
        ("ALERTHUB_ROLE", "fanout"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    """A bad value is refused with a message that names the variable."""
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_env_file_is_read_under_the_environment(tmp_path: Path) -> None:
    """A .env file supplies values; the real environment overrides them."""
    env_file = tmp_path / ".env"
    env_file.write_text('# comment\nALERTHUB_LOG_LEVEL="warning"\nALERTHUB_FEED_RETENTION=7\n')
    s = Settings.from_env({"ALERTHUB_FEED_RETENTION": "9"}, env_file=env_file)
    assert s.log_level == "warning" and s.feed_retention == 9


def test_replica_acknowledgement_settings() -> None:
    """ALERTHUB_MIN_REPLICAS_ACK (default 0) and its timeout (default 1 s) are read and checked."""
    assert (Settings().min_replicas_ack, Settings().replicas_ack_timeout_s) == (0, 1.0)
    s = Settings.from_env(
        {"ALERTHUB_MIN_REPLICAS_ACK": "2", "ALERTHUB_REPLICAS_ACK_TIMEOUT_S": "0.25"}
    )
    assert (s.min_replicas_ack, s.replicas_ack_timeout_s) == (2, 0.25)
    with pytest.raises(SettingsError, match="ALERTHUB_MIN_REPLICAS_ACK must be at least 0"):
        Settings.from_env({"ALERTHUB_MIN_REPLICAS_ACK": "-1"})
    with pytest.raises(SettingsError, match="ALERTHUB_REPLICAS_ACK_TIMEOUT_S"):
        Settings.from_env({"ALERTHUB_REPLICAS_ACK_TIMEOUT_S": "0"})
