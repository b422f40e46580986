"""Settings, read once from ``HEALTHCODE_*`` environment variables.

Bad values fail at start-up with a message that names the variable and the
offending value, rather than surfacing as a strange error deep in a job.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from healthcode.errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///healthcode.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEALTHCODE_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    # The zone in which days, the daily expiry and retention are counted, and
    # in which a feed's naive timestamps are read unless the feed says
    # otherwise.
    zone: str = "Asia/Shanghai"
    # How far in the future a record's timestamp may lie before it is taken
    # for a clock error at the sender rather than a fact.
    future_skew_seconds: int = 300
    # The rule set that colours residents; a path to a JSON file or the name
    # of a rule set shipped with the package.
    rule_set: str = "default"
    log_format: str = "console"

    # The HTTP service. Redis holds hot statuses, rate-limit counters,
    # sign-in codes and sessions when a URL is set; without one they live in
    # the process, which suits one worker and development only. A URL
    # redis+cluster://host:port,host:port/ names a Redis Cluster by some of
    # its nodes (rediss+cluster:// for TLS).
    redis_url: str | None = None
    # The key store that signs codes, and the region codes are issued for
    # (unset: each resident's prefecture of residence); the same variables
    # the ``healthcode code`` and ``keys`` commands read.
    key_dir: str = "keys"
    region: str | None = None
    redis_prefix: str = "healthcode:"
    # How sign-in codes reach a phone: "console" prints them to the server's
    # standard error, "file" appends them to sign_in_file as JSON lines. A
    # deployment plugs in its SMS gateway in their place.
    sign_in_sender: str = "console"
    sign_in_file: str = "healthcode-sign-in-codes.ndjson"
    sign_in_code_minutes: int = 5
    sign_in_attempts: int = 5
    sign_in_lockout_minutes: int = 15
    session_days: int = 30
    official_session_hours: int = 8
    # Cookies for pages are Secure unless this is switched off, which only a
    # developer on plain http://127.0.0.1 should ever do.
    cookie_secure: bool = True
    # Who a guardian may add: children under the first age and adults from
    # the second on; anyone else waits for an official's approval.
    max_dependents: int = 8
    max_guardians: int = 3
    dependent_child_under: int = 18
    dependent_elder_from: int = 60
    # An override of more residents than this in one action needs a second
    # official's approval and a stated legal basis.
    bulk_override_threshold: int = 100
    # Look-ups by identity document a single checkpoint device may make.
    lookups_per_minute: int = 20
    max_upload_bytes: int = 64 * 1024 * 1024
    # Calls to peer regions' instances: how long to wait for an answer, and
    # how many status queries one peer may make of this instance a minute.
    peer_timeout_seconds: float = 5.0
    peer_queries_per_minute: int = 120
    # The ports a Spark job's driver listens on, for its RPC endpoint and its
    # block manager. 0 lets Spark take a free port each run; a cluster whose
    # firewall lets executors reach the driver only on known ports sets them.
    spark_driver_port: int = 0
    spark_block_manager_port: int = 0

    @field_validator("spark_driver_port", "spark_block_manager_port")
    @classmethod
    def _port_sane(cls, value: int) -> int:
        if not 0 <= value <= 65_535:
            raise ValueError("must be a port up to 65535, or 0 for any free one")
        return value

    @field_validator("peer_timeout_seconds")
    @classmethod
    def _timeout_sane(cls, value: float) -> float:
        if not 0.1 <= value <= 120:
            raise ValueError("must be between 0.1 and 120 seconds")
        return value

    @field_validator("zone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("future_skew_seconds")
    @classmethod
    def _skew_sane(cls, value: int) -> int:
        if not 0 <= value <= 86_400:
            raise ValueError("must be between 0 and 86400 seconds")
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format_known(cls, value: str) -> str:
        if value not in ("console", "json"):
            raise ValueError("must be 'console' or 'json'")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_shape(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        from healthcode.accounts.stores import CLUSTER_SCHEMES, cluster_nodes

        if value.startswith(tuple(f"{scheme}://" for scheme in CLUSTER_SCHEMES)):
            cluster_nodes(value)
            return value
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "must start with redis://, rediss://, unix:// or, for a"
                " cluster, redis+cluster://"
            )
        return value

    @field_validator("redis_prefix")
    @classmethod
    def _redis_prefix_untagged(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError(
                "must not hold a brace: Redis Cluster would read it as the hash"
                " tag of every key and put them all in one slot"
            )
        return value

    @field_validator("region")
    @classmethod
    def _region_known(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        from healthcode.identity import divisions

        if not divisions.is_known(value):
            raise ValueError(f"{value!r} is not a GB/T 2260 division code")
        return value

    @field_validator("sign_in_sender")
    @classmethod
    def _sender_known(cls, value: str) -> str:
        if value not in ("console", "file"):
            raise ValueError("must be 'console' or 'file'")
        return value

    @field_validator(
        "sign_in_code_minutes",
        "sign_in_attempts",
        "sign_in_lockout_minutes",
        "session_days",
        "official_session_hours",
        "max_dependents",
        "max_guardians",
        "bulk_override_threshold",
        "lookups_per_minute",
        "max_upload_bytes",
        "peer_queries_per_minute",
    )
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be a whole number of at least 1")
        return value

    @field_validator("dependent_child_under", "dependent_elder_from")
    @classmethod
    def _age_sane(cls, value: int) -> int:
        if not 0 <= value <= 150:
            raise ValueError("must be an age between 0 and 150")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def future_skew(self) -> timedelta:
        return timedelta(seconds=self.future_skew_seconds)


@functools.cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"HEALTHCODE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"Bad configuration: {problems}.") from None
