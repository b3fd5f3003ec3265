"""Settings read once, at the entry point, from the environment (and an optional .env file)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")

DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (
    0,
    5,
    300,
    1800,
    7200,
    18000,
    36000,
    50400,
    72000,
    86400,
)
LOG_LEVELS = ("debug", "info", "warning", "error")
APPENDFSYNC_POLICIES = ("everysec", "always", "no")
# What one hub process does (docs/scale.md): `all` of it; `api`, the HTTP API without background
# delivery; `delivery`, fan-out, webhooks and e-mail with only the probes and /metrics served.
ROLES = ("all", "api", "delivery")


# Every variable `Settings.from_env` reads, its default and what it sets, for `serve --help`.
ENVIRONMENT: tuple[tuple[str, str, str], ...] = (
    (
        "ALERTHUB_REDIS_URL",
        "unset",
        "the Redis to use (redis://, rediss://, unix://, or a primary behind Sentinel:"
        " redis+sentinel://h1:26379,h2:26379/<service>/<db>, or a Redis Cluster:"
        " redis+cluster://h1:7000,h2:7001/, docs/redis-ha.md);"
        " unset: an embedded redis-server",
    ),
    (
        "ALERTHUB_MIN_REPLICAS_ACK",
        "0",
        "an accepted alert is answered only once this many replicas hold it (Redis WAIT)",
    ),
    (
        "ALERTHUB_REPLICAS_ACK_TIMEOUT_S",
        "1",
        "how long to wait for those replicas before answering 503 (a retry is safe)",
    ),
    ("ALERTHUB_DATA_DIR", "./var/alerthub", "where the embedded Redis keeps its files"),
    ("ALERTHUB_BOOTSTRAP_TOKEN", "unset", "the token of the `operator` node"),
    (
        "ALERTHUB_ALLOW_PRIVATE_WEBHOOKS",
        "false",
        "allow webhook URLs on loopback and private addresses (tests, closed networks)",
    ),
    (
        "ALERTHUB_RETRY_SCHEDULE",
        ",".join(f"{d:g}" for d in DEFAULT_RETRY_SCHEDULE),
        "webhook retry delays in seconds",
    ),
    ("ALERTHUB_MAX_BODY_BYTES", "262144", "one alert's body limit (a batch: 4 MiB)"),
    ("ALERTHUB_RATE_LIMIT_PER_MINUTE", "600", "requests per node per minute"),
    ("ALERTHUB_DEDUP_WINDOW_S", "604800", "how long content fingerprints are remembered"),
    ("ALERTHUB_FEED_RETENTION", "100000", "events kept per subscription feed"),
    ("ALERTHUB_WEBHOOK_TIMEOUT_S", "10", "how long one webhook POST may take"),
    ("ALERTHUB_SSE_HEARTBEAT_S", "15", "seconds between SSE heartbeat comments"),
    ("ALERTHUB_MAX_SSE_PER_NODE", "20", "open SSE streams per node"),
    ("ALERTHUB_APPENDFSYNC", "everysec", "the embedded Redis's fsync: everysec, always or no"),
    ("ALERTHUB_LOG_LEVEL", "info", "debug, info, warning or error"),
    ("ALERTHUB_KEY_PREFIX", "alerthub", "the prefix of every Redis key"),
    ("ALERTHUB_SIMILARITY", "true", "compute claim signatures at ingest to link similar reports"),
    (
        "ALERTHUB_SIMILARITY_THRESHOLD",
        "0.5",
        "the score from which two reports are linked (more than 0.2, at most 1)",
    ),
    (
        "ALERTHUB_PUBLIC_URL",
        "the request's origin",
        "where people reach the hub (e-mail, feed links)",
    ),
    (
        "ALERTHUB_SMTP_URL",
        "unset: no e-mail",
        "smtp://user@relay:587 (STARTTLS) or smtps://relay:465",
    ),
    ("ALERTHUB_SMTP_PASSWORD_FILE", "unset", "the SMTP relay's password, read from this file"),
    ("ALERTHUB_SMTP_CA_FILE", "the system's", "the CA that signs the SMTP relay's certificate"),
    ("ALERTHUB_MAIL_FROM", "alerthub <alerthub@localhost>", "the From address of e-mails"),
    ("ALERTHUB_SMTP_TIMEOUT_S", "30", "seconds per SMTP step"),
    ("ALERTHUB_DIGEST_PERIODS", "3600,86400", "hourly and daily e-mail digest periods in seconds"),
    ("ALERTHUB_SCHEMAS_DIR", "the packaged schemas", "a folder of *.schema.json to use instead"),
    ("ALERTHUB_ROLE", "all", "all, api (HTTP, no delivery) or delivery (background only); --role"),
    (
        "ALERTHUB_FANOUT_SHARDS",
        "64",
        "fan-out shards shared by the delivery processes (the same in every process)",
    ),
)


def environment_help() -> str:
    """The ENVIRONMENT table as help text."""
    lines = ["environment (also read from --env-file; the environment wins):"]
    for name, default, meaning in ENVIRONMENT:
        lines += [f"  {name}  (default: {default})", f"      {meaning}"]
    return "\n".join(lines)


class SettingsError(ValueError):
    """A setting has a value the hub cannot use; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str | None = None
    data_dir: Path = Path("./var/alerthub")
    bootstrap_token: str | None = field(default=None, repr=False)
    allow_private_webhooks: bool = False
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    max_body_bytes: int = 262_144
    max_batch_bytes: int = 4 * 1024 * 1024
    rate_limit_per_minute: int = 600
    dedup_window_s: int = 604_800
    feed_retention: int = 100_000
    webhook_timeout_s: float = 10.0
    sse_heartbeat_s: float = 15.0
    max_sse_per_node: int = 20
    appendfsync: str = "everysec"
    log_level: str = "info"
    key_prefix: str = "alerthub"
    # Claim similarity (docs/claims.md): on or off, and the score from which two reports'
    # claims are linked (0.5: edits and re-scriptings link, different claims about one place or
    # person do not; higher links less).
    similarity: bool = True
    similarity_threshold: float = 0.5
    # Where people reach the hub (links in e-mails, feed URLs); None: the request's own origin.
    public_url: str | None = None
    # E-mail delivery (email_delivery.py): the relay, smtp:// (STARTTLS) or smtps:// (TLS).
    smtp_url: str | None = field(default=None, repr=False)
    smtp_password_file: Path | None = None
    smtp_ca_file: Path | None = None
    mail_from: str = "alerthub <alerthub@localhost>"
    smtp_timeout_s: float = 30.0
    # The lengths of the `hourly` and `daily` digests' periods (seconds; epoch-aligned, so a day
    # is a UTC day). Shorter ones are for tests.
    digest_periods_s: tuple[float, float] = (3600.0, 86400.0)
    # One of ROLES: what this process serves and runs (hub/app.py).
    role: str = "all"
    # How many shards the subscriptions are split into for fan-out (hub/delivery/shards.py):
    # each has its own lease and its own read of the event log.
    fanout_shards: int = 64
    # Replicas that must hold an alert before it is acknowledged (docs/redis-ha.md), and how
    # long to wait for them.
    min_replicas_ack: int = 0
    replicas_ack_timeout_s: float = 1.0
    # The folder where prometheus_client's multiprocess mode keeps every worker's counters:
    # set by `serve --workers N` for its workers (hub/cli_workers.py), never from the environment.
    metrics_dir: str | None = None

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "bootstrap_token" and value is not None:
                value = "***"
            if f.name in ("redis_url", "smtp_url") and value:
                value = redact_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, env_file: Path | None = None
    ) -> Settings:
        """Settings from `environ` (default os.environ), with `env_file` values underneath it."""
        values: dict[str, str] = {}
        if env_file is not None and env_file.is_file():
            values.update(read_env_file(env_file))
        values.update(os.environ if environ is None else environ)

        def get(name: str) -> str | None:
            raw = values.get(name)
            return raw.strip() if raw is not None and raw.strip() != "" else None

        return cls(
            redis_url=get("ALERTHUB_REDIS_URL"),
            data_dir=Path(get("ALERTHUB_DATA_DIR") or "./var/alerthub"),
            bootstrap_token=get("ALERTHUB_BOOTSTRAP_TOKEN"),
            allow_private_webhooks=_bool("ALERTHUB_ALLOW_PRIVATE_WEBHOOKS", get, False),
            retry_schedule=_schedule(get("ALERTHUB_RETRY_SCHEDULE")),
            max_body_bytes=_int("ALERTHUB_MAX_BODY_BYTES", get, 262_144, minimum=1024),
            rate_limit_per_minute=_int("ALERTHUB_RATE_LIMIT_PER_MINUTE", get, 600, minimum=1),
            dedup_window_s=_int("ALERTHUB_DEDUP_WINDOW_S", get, 604_800, minimum=1),
            feed_retention=_int("ALERTHUB_FEED_RETENTION", get, 100_000, minimum=1),
            webhook_timeout_s=_seconds("ALERTHUB_WEBHOOK_TIMEOUT_S", get, 10.0),
            sse_heartbeat_s=_seconds("ALERTHUB_SSE_HEARTBEAT_S", get, 15.0),
            max_sse_per_node=_int("ALERTHUB_MAX_SSE_PER_NODE", get, 20, minimum=1),
            appendfsync=_appendfsync(get("ALERTHUB_APPENDFSYNC")),
            log_level=_log_level(get("ALERTHUB_LOG_LEVEL")),
            key_prefix=_prefix(get("ALERTHUB_KEY_PREFIX")),
            similarity=_bool("ALERTHUB_SIMILARITY", get, True),
            similarity_threshold=_threshold(get("ALERTHUB_SIMILARITY_THRESHOLD")),
            public_url=_public_url(get("ALERTHUB_PUBLIC_URL")),
            smtp_url=_smtp_url(get("ALERTHUB_SMTP_URL")),
            smtp_password_file=_path(get("ALERTHUB_SMTP_PASSWORD_FILE")),
            smtp_ca_file=_path(get("ALERTHUB_SMTP_CA_FILE")),
            mail_from=_mail_from(get("ALERTHUB_MAIL_FROM")),
            smtp_timeout_s=_seconds("ALERTHUB_SMTP_TIMEOUT_S", get, 30.0),
            digest_periods_s=_periods(get("ALERTHUB_DIGEST_PERIODS")),
            role=_role(get("ALERTHUB_ROLE")),
            fanout_shards=_shards(get("ALERTHUB_FANOUT_SHARDS")),
            min_replicas_ack=_int("ALERTHUB_MIN_REPLICAS_ACK", get, 0, minimum=0),
            replicas_ack_timeout_s=_seconds("ALERTHUB_REPLICAS_ACK_TIMEOUT_S", get, 1.0),
        )


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped; surrounding quotes removed."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def _bool(name: str, get, default: bool) -> bool:
    raw = get(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _int(name: str, get, default: int, minimum: int) -> int:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}")
    return value


def _seconds(name: str, get, default: float) -> float:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not 0 < value <= 3600:
        raise SettingsError(f"{name} must be more than 0 and at most 3600, not {raw}")
    return value


def _schedule(raw: str | None) -> tuple[float, ...]:
    """Whole or fractional seconds (fractions make tests quick)."""
    if raw is None:
        return DEFAULT_RETRY_SCHEDULE
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise SettingsError(
            f"ALERTHUB_RETRY_SCHEDULE must be comma-separated seconds, not {raw!r}"
        ) from None
    if not delays or any(not math.isfinite(d) or d < 0 for d in delays):
        raise SettingsError("ALERTHUB_RETRY_SCHEDULE needs one or more delays >= 0")
    return delays


def _threshold(raw: str | None) -> float:
    """A similarity score from which claims are linked: more than 0.2 (below it, claims that
    share a few words would link), at most 1 (only claims equal once folded)."""
    if raw is None:
        return 0.5
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(
            f"ALERTHUB_SIMILARITY_THRESHOLD must be a number, not {raw!r}"
        ) from None
    if not 0.2 < value <= 1:
        raise SettingsError(
            f"ALERTHUB_SIMILARITY_THRESHOLD must be more than 0.2 and at most 1, not {raw}"
        )
    return value


def _appendfsync(raw: str | None) -> str:
    """The embedded Redis's fsync policy for its append-only file (docs/guarantees.md,
    "Durability")."""
    policy = (raw or "everysec").lower()
    if policy not in APPENDFSYNC_POLICIES:
        raise SettingsError(
            f"ALERTHUB_APPENDFSYNC must be one of {', '.join(APPENDFSYNC_POLICIES)}, not {raw!r}"
        )
    return policy


def _log_level(raw: str | None) -> str:
    level = (raw or "info").lower()
    if level not in LOG_LEVELS:
        raise SettingsError(f"ALERTHUB_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    return level


def _role(raw: str | None) -> str:
    role = (raw or "all").lower()
    if role not in ROLES:
        raise SettingsError(f"ALERTHUB_ROLE must be one of {', '.join(ROLES)}, not {raw!r}")
    return role


MAX_FANOUT_SHARDS = 1024


def _shards(raw: str | None) -> int:
    shards = _int("ALERTHUB_FANOUT_SHARDS", lambda _name: raw, 64, minimum=1)
    if shards > MAX_FANOUT_SHARDS:
        raise SettingsError(f"ALERTHUB_FANOUT_SHARDS must be at most {MAX_FANOUT_SHARDS}")
    return shards


def _prefix(raw: str | None) -> str:
    prefix = raw or "alerthub"
    if not all(c.isalnum() or c in "-_." for c in prefix):
        raise SettingsError("ALERTHUB_KEY_PREFIX may hold only letters, digits, '-', '_', '.'")
    return prefix


def _public_url(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not raw.startswith(("http://", "https://")) or any(c in raw for c in " \r\n?#"):
        raise SettingsError(f"ALERTHUB_PUBLIC_URL must be an http(s) URL, not {raw!r}")
    return raw.rstrip("/")


def _smtp_url(raw: str | None) -> str | None:
    """smtp://[user[:password]@]host[:port] (STARTTLS, required), smtps://… (TLS from the first
    byte), or smtp://…?tls=off for a relay on this host only (email_delivery.SmtpRelay)."""
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SettingsError("ALERTHUB_SMTP_URL must be smtp://host or smtps://host")
    try:
        parts.port  # noqa: B018 (a port out of range raises here)
    except ValueError:
        raise SettingsError("ALERTHUB_SMTP_URL has a bad port") from None
    tls = parse_qs(parts.query).get("tls", ["on"])[0]
    if tls not in ("on", "off"):
        raise SettingsError("ALERTHUB_SMTP_URL: tls must be on or off")
    if tls == "off" and (parts.scheme == "smtps" or parts.hostname not in LOOPBACK_HOSTS):
        raise SettingsError(
            "ALERTHUB_SMTP_URL: tls=off only for a relay on this host (smtp://localhost)"
        )
    return raw


def _periods(raw: str | None) -> tuple[float, float]:
    if raw is None:
        return (3600.0, 86400.0)
    try:
        hourly, daily = (float(part) for part in raw.split(","))
    except ValueError:
        raise SettingsError("ALERTHUB_DIGEST_PERIODS must be two numbers: hourly,daily") from None
    if not (0 < hourly <= daily):
        raise SettingsError("ALERTHUB_DIGEST_PERIODS must be 0 < hourly <= daily seconds")
    return hourly, daily


def _path(raw: str | None) -> Path | None:
    return Path(raw) if raw is not None else None


def _mail_from(raw: str | None) -> str:
    value = raw or "alerthub <alerthub@localhost>"
    if any(c in value for c in "\r\n") or "@" not in value:
        raise SettingsError("ALERTHUB_MAIL_FROM must be one address such as hub <hub@example.org>")
    return value


def redact_url(url: str) -> str:
    """`url` with any password (also a Sentinel URL's `sentinel_password` option) replaced by
    ***, safe to log."""
    url = re.sub(r"(?i)([?&]sentinel_password=)[^&#]*", r"\1***", url)
    scheme, _, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
