"""Frozen server settings: defaults < FLOOM_*/WORKEROS_* environment < command-line flags.

Only this module and cli.py read the environment.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "workspace_template"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    environment: str = "production"  # shown by /system/info (e.g. staging, development)
    log_format: str = "auto"  # json (one object per line), text, or auto (text on a terminal)
    log_level: str = "info"  # debug adds one line per request
    port: int = 8000
    data_dir: Path = Path("./floom-data")
    template_dir: Path = DEFAULT_TEMPLATE_DIR
    # Shared secret (x-floom-secret). When unset, the server generates one in system/.
    secret: str | None = None
    shared_secret_role: str = "member"
    # Limits on what a request may carry.
    max_json_bytes: int = 1024 * 1024
    max_file_bytes: int = 25 * 1024 * 1024
    max_upload_bytes: int = 50 * 1024 * 1024
    max_archive_entries: int = 2000
    # Live on-disk edits.
    watch: bool = True
    sync_quiet_seconds: float = 1.0
    sync_author_name: str = "floom-sync"
    sync_author_email: str = "sync@floom.local"
    # Git over HTTP.
    git_binary: str = "git"
    git_remote: str | None = None
    git_timeout_seconds: float = 3600.0  # wall clock for one upload-pack/receive-pack request
    git_max_processes: int = 16  # concurrent git processes serving HTTP on this node
    push_max_bytes: int = 200 * 1024 * 1024  # a whole push (its request body), spooled first
    # Remote mirror: "{workspace}" in git_remote names one remote per workspace.
    mirror_retry_seconds: float = 1.0  # first retry after a failed push; doubles per failure
    mirror_retry_max_seconds: float = 300.0
    min_free_gb: float = 1.0  # /health/details reports the disk as not ok below this
    # Runs (issue 5).
    max_concurrent_runs: int = 4
    max_run_timeout_seconds: int = 3600
    run_kill_grace_seconds: float = 5.0
    run_commit_delay: float = 0.05  # group run-record commits made within this window
    run_max_result_bytes: int = 5 * 1024 * 1024
    run_max_log_lines: int = 10_000
    run_max_artifact_bytes: int = 50 * 1024 * 1024
    run_memory_mb: int = 2048
    run_file_size_mb: int = 100
    run_max_processes: int = 512  # processes and threads of one run
    run_scratch_mb: int = 1024  # what a run may write to its scratch dir in all
    # Confinement (issue 12): "bwrap" (default) runs every run under bubblewrap; "none" does not.
    sandbox: str = "bwrap"
    bwrap_binary: str = "bwrap"
    install_env: tuple[tuple[str, str], ...] = ()  # PIP_* and proxy settings pip installs get
    # Where runs execute (issue 19): "local" (this process) or "celery" (Celery workers started
    # with `floom-git executor`, fed through a Redis broker).
    executor: str = "local"
    celery_broker: str | None = None  # redis://host:port/db
    celery_queue: str = "floom-runs"
    # Shared by home nodes and executors (base64 of 32 bytes): seals each task's run token and
    # secret values, so the broker only ever holds ciphertext.
    executor_key: str | None = None
    home_url: str | None = None  # how executors reach this node (default http://host:port)
    executor_heartbeat_seconds: float = 2.0  # an executor reports at least this often
    executor_lost_seconds: float = 20.0  # silence after which a claimed run is `executor_lost`
    executor_claim_seconds: float = 3600.0  # a dispatched run waits this long for an executor
    executor_concurrency: int = 0  # runs at once per `floom-git executor` (0: one per core)
    # Agent runs and the workspace chat (issue 15).
    agent_prices: Path | None = None  # an operator's price file over agents/prices.yml
    agent_stall_seconds: float = 120.0  # a provider stream silent this long fails the turn
    chat_timeout_seconds: float = 300.0  # one chat answer, tool calls included
    approval_ttl_seconds: float = 24 * 3600
    approval_sweep_seconds: float = 30.0
    scheduler: bool = True
    scheduler_tick_seconds: float = 30.0
    webhook_rate_limit: int = 60
    webhook_rate_window: float = 60.0
    sse_keepalive_seconds: float = 15.0
    alert_retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0)
    alert_allow_private_urls: bool = False
    # Email alerts: smtp://[user:password@]host[:port] (smtps:// for TLS, ?starttls=true).
    smtp_url: str | None = None
    smtp_from: str = "floom-git@localhost"
    # Identity and tenancy (issue 4).
    argon2_profile: str = "RFC_9106_LOW_MEMORY"  # argon2.profiles name; CHEAPEST only for tests
    session_ttl_seconds: int = 7 * 86400
    magic_link_ttl_seconds: int = 900
    device_code_ttl_seconds: int = 600
    public_url: str | None = None  # base of magic-link and device-verification URLs
    rate_list_per_minute: int = 240  # list endpoints, per identity
    rate_auth_per_minute: int = 10  # magic links, device flow, token minting, per identity or IP
    rate_login_per_minute: int = 5  # password sign-in, per user and per client IP
    rate_auth_fail_per_minute: int = 30  # wrong credentials per client IP, then 429 for a while
    # Workspace export/import bundles and share links (issue 6).
    import_max_entries: int = 5000
    import_max_bytes: int = 200 * 1024 * 1024  # uncompressed total of one bundle
    # Connections, MCP and integrations (issue 16).
    allow_private_mcp_urls: bool = False  # remote MCP servers / OAuth endpoints on private nets
    mcp_call_timeout_seconds: float = 120.0  # one call to a remote MCP server
    mcp_allowed_hosts: tuple[str, ...] = ()  # Host values /mcp accepts besides loopback and host
    oauth_state_ttl_seconds: int = 600  # an OAuth sign-in must finish within this
    composio_webhook_signing_key: str | None = None  # POST /composio-events answers 503 without

    @property
    def workspaces_dir(self) -> Path:
        return self.data_dir / "workspaces"

    @property
    def system_dir(self) -> Path:
        return self.data_dir / "system"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def envs_dir(self) -> Path:
        return self.data_dir / "envs"

    @property
    def executor_url(self) -> str:
        """The base URL executors use to reach this node (fetch, logs, results)."""
        if self.home_url:
            return self.home_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


SANDBOXES = ("bwrap", "none")
EXECUTORS = ("local", "celery")


def _executor(value: str) -> str:
    mode = value.strip().lower()
    if mode not in EXECUTORS:
        raise ValueError(f"FLOOM_EXECUTOR must be one of {', '.join(EXECUTORS)}, not {value!r}")
    return mode


LOG_LEVELS = ("debug", "info", "warning", "error")


def _log_level(value: str) -> str:
    level = value.strip().lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"FLOOM_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return level


def _sandbox(value: str) -> str:
    mode = value.strip().lower()
    if mode not in SANDBOXES:
        raise ValueError(f"FLOOM_SANDBOX must be one of {', '.join(SANDBOXES)}, not {value!r}")
    return mode


_INSTALL_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


# (environment variable, Settings field, parser) for the run engine's knobs.
_RUN_ENV: tuple[tuple[str, str, Callable[[str], object]], ...] = (
    ("WORKEROS_MAX_CONCURRENT_RUNS", "max_concurrent_runs", int),
    ("FLOOM_MAX_CONCURRENT_RUNS", "max_concurrent_runs", int),
    ("FLOOM_MAX_RUN_TIMEOUT", "max_run_timeout_seconds", int),
    ("FLOOM_APPROVAL_TTL_SECONDS", "approval_ttl_seconds", float),
    ("FLOOM_SCHEDULER", "scheduler", _bool),
    ("FLOOM_WH_RATE_LIMIT", "webhook_rate_limit", int),
    ("FLOOM_WH_RATE_WINDOW", "webhook_rate_window", float),
    ("WORKEROS_ALLOW_PRIVATE_ALERT_URLS", "alert_allow_private_urls", _bool),
    ("FLOOM_ARGON2_PROFILE", "argon2_profile", str),
    ("FLOOM_SESSION_TTL_SECONDS", "session_ttl_seconds", int),
    ("FLOOM_MAGIC_LINK_TTL_SECONDS", "magic_link_ttl_seconds", int),
    ("FLOOM_DEVICE_CODE_TTL_SECONDS", "device_code_ttl_seconds", int),
    ("FLOOM_PUBLIC_URL", "public_url", str),
    ("FLOOM_ENVIRONMENT", "environment", str),
    ("FLOOM_SMTP_URL", "smtp_url", str),
    ("FLOOM_SMTP_FROM", "smtp_from", str),
    ("FLOOM_RATE_LIST_PER_MINUTE", "rate_list_per_minute", int),
    ("FLOOM_RATE_AUTH_PER_MINUTE", "rate_auth_per_minute", int),
    ("FLOOM_RATE_LOGIN_PER_MINUTE", "rate_login_per_minute", int),
    ("FLOOM_RATE_AUTH_FAIL_PER_MINUTE", "rate_auth_fail_per_minute", int),
    ("FLOOM_GIT_TIMEOUT_SECONDS", "git_timeout_seconds", float),
    ("FLOOM_GIT_MAX_PROCESSES", "git_max_processes", int),
    ("FLOOM_PUSH_MAX_BYTES", "push_max_bytes", int),
    ("FLOOM_IMPORT_MAX_ENTRIES", "import_max_entries", int),
    ("FLOOM_IMPORT_MAX_BYTES", "import_max_bytes", int),
    ("FLOOM_SANDBOX", "sandbox", _sandbox),
    ("FLOOM_RUN_MAX_PROCESSES", "run_max_processes", int),
    ("FLOOM_RUN_SCRATCH_MB", "run_scratch_mb", int),
    ("WORKEROS_ALLOW_PRIVATE_MCP_URLS", "allow_private_mcp_urls", _bool),
    ("FLOOM_MCP_CALL_TIMEOUT_SECONDS", "mcp_call_timeout_seconds", float),
    ("FLOOM_MCP_ALLOWED_HOSTS", "mcp_allowed_hosts",
     lambda v: tuple(h.strip() for h in v.split(",") if h.strip())),
    ("COMPOSIO_WEBHOOK_SIGNING_KEY", "composio_webhook_signing_key", str),
    ("FLOOM_EXECUTOR", "executor", _executor),
    ("FLOOM_CELERY_BROKER", "celery_broker", str),
    ("FLOOM_CELERY_QUEUE", "celery_queue", str),
    ("FLOOM_EXECUTOR_KEY", "executor_key", str),
    ("FLOOM_HOME_URL", "home_url", str),
    ("FLOOM_EXECUTOR_HEARTBEAT_SECONDS", "executor_heartbeat_seconds", float),
    ("FLOOM_EXECUTOR_LOST_SECONDS", "executor_lost_seconds", float),
    ("FLOOM_EXECUTOR_CLAIM_SECONDS", "executor_claim_seconds", float),
    ("FLOOM_EXECUTOR_CONCURRENCY", "executor_concurrency", int),
    ("FLOOM_AGENT_PRICES", "agent_prices", Path),
    ("FLOOM_AGENT_STALL_SECONDS", "agent_stall_seconds", float),
    ("FLOOM_CHAT_TIMEOUT_SECONDS", "chat_timeout_seconds", float),
)


def from_env(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from the environment, then apply non-None overrides (CLI flags)."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    if "FLOOM_HOST" in env:
        values["host"] = env["FLOOM_HOST"]
    if "FLOOM_LOG_FORMAT" in env:
        values["log_format"] = env["FLOOM_LOG_FORMAT"]
    if env.get("FLOOM_LOG_LEVEL"):
        values["log_level"] = _log_level(env["FLOOM_LOG_LEVEL"])
    if "FLOOM_PORT" in env:
        values["port"] = int(env["FLOOM_PORT"])
    if "FLOOM_DATA_DIR" in env:
        values["data_dir"] = Path(env["FLOOM_DATA_DIR"])
    if "FLOOM_TEMPLATE_DIR" in env:
        values["template_dir"] = Path(env["FLOOM_TEMPLATE_DIR"])
    if env.get("FLOOM_SECRET"):
        values["secret"] = env["FLOOM_SECRET"]
    if "WORKEROS_SHARED_SECRET_ROLE" in env:
        values["shared_secret_role"] = env["WORKEROS_SHARED_SECRET_ROLE"]
    if "FLOOM_WATCH" in env:
        values["watch"] = _bool(env["FLOOM_WATCH"])
    if "FLOOM_SYNC_QUIET_SECONDS" in env:
        values["sync_quiet_seconds"] = float(env["FLOOM_SYNC_QUIET_SECONDS"])
    if "FLOOM_SYNC_AUTHOR_NAME" in env:
        values["sync_author_name"] = env["FLOOM_SYNC_AUTHOR_NAME"]
    if "FLOOM_SYNC_AUTHOR_EMAIL" in env:
        values["sync_author_email"] = env["FLOOM_SYNC_AUTHOR_EMAIL"]
    if env.get("WORKEROS_GIT_REMOTE"):
        values["git_remote"] = env["WORKEROS_GIT_REMOTE"]
    for name, key in (("FLOOM_MIRROR_RETRY_SECONDS", "mirror_retry_seconds"),
                      ("FLOOM_MIRROR_RETRY_MAX_SECONDS", "mirror_retry_max_seconds"),
                      ("FLOOM_MIN_FREE_GB", "min_free_gb")):
        if env.get(name):
            values[key] = float(env[name])
    for name, key, cast in _RUN_ENV:
        if env.get(name):
            values[key] = cast(env[name])
    values["install_env"] = tuple(sorted((k, v) for k, v in env.items()
                                         if k.startswith("PIP_") or k in _INSTALL_ENV))
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "data_dir" in values:
        values["data_dir"] = Path(str(values["data_dir"])).resolve()
    return Settings(**values)  # type: ignore[arg-type]
