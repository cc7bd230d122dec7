"""Settings from the environment, a `.env` file and an optional TOML file, validated once at start."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.errors import SettingsError
from bot.secrets import Secret

BACKENDS = ("ideogram", "ideogram-legacy", "ideogram-edit", "runware", "task-proxy")
TASK_FORMATS = ("legacy", "v3")
AUTH_SCHEMES = ("api-key", "bearer")
PERIODS = ("daily", "weekly", "monthly")

# Per-backend defaults: base URL, endpoint path, auth scheme, model.
BACKEND_DEFAULTS: dict[str, dict[str, str]] = {
    "ideogram": {
        "url": "https://api.ideogram.ai",
        "path": "/v1/ideogram-v3/remix",
        "auth": "api-key",
        "model": "",
    },
    "ideogram-legacy": {
        "url": "https://api.ideogram.ai",
        "path": "/remix",
        "auth": "api-key",
        "model": "V_3",
    },
    # A reseller's synchronous edit endpoint: flat multipart fields, legacy model names.
    "ideogram-edit": {
        "url": "",
        "path": "/ideogram/edit",
        "auth": "bearer",
        "model": "V_2_TURBO",
    },
    "runware": {
        "url": "https://api.runware.ai",
        "path": "/v1",
        "auth": "bearer",
        "model": "ideogram:4@2",
    },
    "task-proxy": {
        "url": "",
        "path": "/ideogram/v1/ideogram-v3/remix",
        "auth": "bearer",
        "model": "",
    },
}


@dataclass(frozen=True)
class Settings:
    """Every setting of the bot; build it with :func:`load_settings`."""

    # Backend
    backend: str = "ideogram"
    backend_url: str = ""
    api_key: Secret | None = None
    auth_scheme: str = ""
    remix_path: str = ""
    model: str = ""
    task_submit_path: str = "/ideogram/v1/ideogram-v3/remix"
    # legacy or v3; empty lets the submit path decide (see bot/remix/backends/task_proxy.py).
    task_format: str = ""
    # The only task query path the reference documents (the Kling-style envelope proxies reuse).
    task_query_path: str = "/kling/v1/images/generations/{task_id}"
    task_max_wait: float = 600.0
    backend_timeout: float = 180.0
    # Result downloads
    trusted_hosts: tuple[str, ...] = ()
    max_download_bytes: int = 30 * 1024 * 1024
    download_timeout: float = 60.0
    # Data
    data_dir: Path = Path("./data")
    retention_days: int = 30
    # Image intake
    max_input_bytes: int = 25 * 1000 * 1000
    max_input_pixels: int = 50 * 1000 * 1000
    max_side: int = 2048
    auto_aspect: bool = True
    # Quotas
    default_limit: int = 25
    quota_period: str = "daily"
    reset_hour: int = 0
    # Discord
    discord_token: Secret | None = None
    discord_api_base: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"
    max_images_per_job: int = 4
    inflight_images: int = 10
    user_queue_cap: int = 3
    queue_max: int = 50
    log_level: str = "INFO"

    @property
    def db_path(self) -> Path:
        """The SQLite file under the data directory."""
        return self.data_dir / "remixbot.sqlite3"

    def require_api_key(self) -> str:
        """Return the backend API key, or say which setting is missing."""
        if not self.api_key:
            raise SettingsError(
                "REMIXBOT_API_KEY is not set; put the backend's API key in the environment or .env."
            )
        return self.api_key.get()

    def require_discord_token(self) -> str:
        """Return the bot token, or say which setting is missing."""
        if not self.discord_token:
            raise SettingsError(
                "DISCORD_TOKEN is not set; copy the bot token from the Discord Developer Portal."
            )
        return self.discord_token.get()


@dataclass(frozen=True)
class _Spec:
    env: str
    parse: Callable[[str, str], Any]
    doc: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _str(name: str, raw: str) -> str:
    return raw.strip()


def _secret(name: str, raw: str) -> Secret | None:
    raw = raw.strip()
    return Secret(raw) if raw else None


def _int(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise SettingsError(
                f"{name} must be a whole number from {lo} to {hi}, not {raw!r}."
            ) from None
        if not lo <= value <= hi:
            raise SettingsError(f"{name} must be from {lo} to {hi}, not {value}.")
        return value

    return parse


def _float(lo: float, hi: float) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise SettingsError(
                f"{name} must be a number of seconds from {lo:g} to {hi:g}, not {raw!r}."
            ) from None
        if not lo <= value <= hi:
            raise SettingsError(f"{name} must be from {lo:g} to {hi:g}, not {value:g}.")
        return value

    return parse


def _bool(name: str, raw: str) -> bool:
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}.")


def _choice(options: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = str(raw).strip().lower()
        if value not in options:
            raise SettingsError(f"{name} must be one of {', '.join(options)}, not {raw!r}.")
        return value

    return parse


def _hosts(name: str, raw: str | list[str]) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    return tuple(h.strip().lower().strip("[]") for h in items if h.strip())


def _path(name: str, raw: str) -> str:
    value = str(raw).strip()
    if value and not value.startswith("/"):
        raise SettingsError(f"{name} must be a path starting with '/', not {raw!r}.")
    return value


def _dir(name: str, raw: str) -> Path:
    return Path(str(raw).strip()).expanduser()


SPECS: dict[str, _Spec] = {
    "backend": _Spec(
        "REMIXBOT_BACKEND",
        _choice(BACKENDS),
        "Remix backend: ideogram, ideogram-legacy, ideogram-edit, runware or task-proxy.",
    ),
    "backend_url": _Spec(
        "REMIXBOT_BACKEND_URL", _str, "Base URL of the backend (default per backend)."
    ),
    "api_key": _Spec("REMIXBOT_API_KEY", _secret, "The backend's API key."),
    "auth_scheme": _Spec(
        "REMIXBOT_AUTH_SCHEME",
        _choice(AUTH_SCHEMES),
        "api-key (Api-Key header) or bearer (Authorization: Bearer).",
    ),
    "remix_path": _Spec(
        "REMIXBOT_REMIX_PATH", _path, "Overrides the endpoint path (for resellers)."
    ),
    "model": _Spec(
        "REMIXBOT_MODEL",
        _str,
        "Model for ideogram-legacy and legacy task-proxy (V_1 … V_3), ideogram-edit "
        "(V_1 … V_2_TURBO) and runware (AIR id).",
    ),
    "task_submit_path": _Spec("REMIXBOT_TASK_SUBMIT_PATH", _path, "task-proxy: submit path."),
    "task_format": _Spec(
        "REMIXBOT_TASK_FORMAT",
        _choice(TASK_FORMATS),
        "task-proxy: submit body, legacy or v3 (default: from the submit path).",
    ),
    "task_query_path": _Spec(
        "REMIXBOT_TASK_QUERY_PATH", _path, "task-proxy: query path with {task_id}."
    ),
    "task_max_wait": _Spec(
        "REMIXBOT_TASK_MAX_WAIT", _float(1, 3600), "task-proxy: longest wait for a task, seconds."
    ),
    "backend_timeout": _Spec(
        "REMIXBOT_BACKEND_TIMEOUT",
        _float(1, 900),
        "Longest wait for a synchronous remix call, seconds.",
    ),
    "trusted_hosts": _Spec(
        "REMIXBOT_TRUSTED_HOSTS",
        _hosts,
        "Hosts exempt from the private-address check on downloads.",
    ),
    "max_download_bytes": _Spec(
        "REMIXBOT_MAX_DOWNLOAD_BYTES", _int(1024, 1 << 31), "Largest result image accepted, bytes."
    ),
    "download_timeout": _Spec(
        "REMIXBOT_DOWNLOAD_TIMEOUT",
        _float(1, 600),
        "Longest download of one result image, seconds.",
    ),
    "data_dir": _Spec("REMIXBOT_DATA_DIR", _dir, "Where the database and stored inputs live."),
    "retention_days": _Spec(
        "REMIXBOT_RETENTION_DAYS", _int(1, 3650), "Days stored input images are kept for rerolls."
    ),
    "max_input_bytes": _Spec(
        "REMIXBOT_MAX_INPUT_BYTES", _int(1024, 1 << 30), "Largest input image accepted, bytes."
    ),
    "max_input_pixels": _Spec(
        "REMIXBOT_MAX_INPUT_PIXELS",
        _int(1024, 178_000_000),
        "Largest input image accepted, pixels.",
    ),
    "max_side": _Spec(
        "REMIXBOT_MAX_SIDE", _int(256, 8192), "Inputs are downscaled to this long side, pixels."
    ),
    "auto_aspect": _Spec(
        "REMIXBOT_AUTO_ASPECT", _bool, "Pick the aspect ratio nearest the input when none is given."
    ),
    "default_limit": _Spec(
        "REMIXBOT_DEFAULT_LIMIT", _int(0, 1_000_000), "Images per user per period, by default."
    ),
    "quota_period": _Spec("REMIXBOT_QUOTA_PERIOD", _choice(PERIODS), "daily, weekly or monthly."),
    "reset_hour": _Spec(
        "REMIXBOT_RESET_HOUR", _int(0, 23), "Hour (UTC) at which quota periods start."
    ),
    "discord_token": _Spec("DISCORD_TOKEN", _secret, "The Discord bot token."),
    "discord_api_base": _Spec(
        "DISCORD_API_BASE", _str, "Discord REST base URL (a REST proxy or a test fake)."
    ),
    "discord_gateway_url": _Spec("DISCORD_GATEWAY_URL", _str, "Discord gateway URL (a test fake)."),
    "max_images_per_job": _Spec(
        "REMIXBOT_MAX_IMAGES_PER_JOB", _int(1, 8), "Cap on num_images for one /remix."
    ),
    "inflight_images": _Spec(
        "REMIXBOT_INFLIGHT_IMAGES", _int(1, 1000), "Images in flight at the backend at once."
    ),
    "user_queue_cap": _Spec(
        "REMIXBOT_USER_QUEUE_CAP", _int(1, 100), "Jobs one user may have queued."
    ),
    "queue_max": _Spec(
        "REMIXBOT_QUEUE_MAX",
        _int(1, 100_000),
        "Jobs queued in all; past it members are told to retry.",
    ),
    "log_level": _Spec(
        "REMIXBOT_LOG_LEVEL", _choice(("debug", "info", "warning", "error")), "Log level."
    ),
}


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a `.env` file: KEY=VALUE lines, `#` comments, optional quotes and `export`."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    dotenv: Path | None = Path(".env"),
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build settings: TOML file (REMIXBOT_CONFIG) < .env < environment < overrides; validate once."""
    env = dict(os.environ if environ is None else environ)
    merged: dict[str, str] = {}
    if dotenv is not None:
        merged.update(read_dotenv(dotenv))
    merged.update(env)

    raw: dict[str, tuple[str, Any]] = {}  # field -> (source name for messages, value)
    config = merged.get("REMIXBOT_CONFIG")
    if config:
        path = Path(config).expanduser()
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(
                f"REMIXBOT_CONFIG names {str(path)!r}, which does not exist."
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(
                f"REMIXBOT_CONFIG file {str(path)!r} is not valid TOML: {exc}."
            ) from None
        for key, value in table.items():
            if key not in SPECS:
                known = ", ".join(sorted(SPECS))
                raise SettingsError(
                    f"Unknown setting {key!r} in {str(path)!r}; known settings: {known}."
                )
            raw[key] = (f"{key} in {path.name}", value)
    for name, spec in SPECS.items():
        if spec.env in merged and merged[spec.env] != "":
            raw[name] = (spec.env, merged[spec.env])

    values: dict[str, Any] = {}
    for name, (source, value) in raw.items():
        parse = SPECS[name].parse
        values[name] = parse(source, value if isinstance(value, list) else str(value))
    if overrides:
        values.update(overrides)
    return _finish(Settings(**values))


def _finish(s: Settings) -> Settings:
    """Fill per-backend defaults and check settings that depend on each other."""
    defaults = BACKEND_DEFAULTS[s.backend]
    changes: dict[str, Any] = {}
    if not s.backend_url:
        if not defaults["url"]:
            raise SettingsError(
                f"REMIXBOT_BACKEND_URL is required for the {s.backend} backend; give the proxy's base URL."
            )
        changes["backend_url"] = defaults["url"]
    url = changes.get("backend_url", s.backend_url).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"REMIXBOT_BACKEND_URL must be an http(s) URL, not {url!r}.")
    changes["backend_url"] = url
    if not s.auth_scheme:
        changes["auth_scheme"] = defaults["auth"]
    if not s.remix_path:
        changes["remix_path"] = defaults["path"]
    if not s.model:
        changes["model"] = defaults["model"]
    if "{task_id}" not in s.task_query_path:
        raise SettingsError(
            f"REMIXBOT_TASK_QUERY_PATH must contain {{task_id}}, not {s.task_query_path!r}."
        )
    for name in ("discord_api_base", "discord_gateway_url"):
        value = getattr(s, name)
        scheme = urlsplit(value).scheme
        allowed = ("http", "https") if name == "discord_api_base" else ("ws", "wss")
        if scheme not in allowed:
            env = SPECS[name].env
            raise SettingsError(f"{env} must be a {' or '.join(allowed)} URL, not {value!r}.")
    changes["discord_api_base"] = s.discord_api_base.rstrip("/")
    changes["log_level"] = s.log_level.upper()
    return dataclasses.replace(s, **changes)


def settings_table() -> list[tuple[str, str, str]]:
    """(environment variable, default, meaning) rows, for the README and `remixbot config`."""
    base = Settings()
    rows = []
    for name, spec in SPECS.items():
        default = getattr(base, name)
        if isinstance(default, tuple):
            default = ",".join(default)
        rows.append((spec.env, "" if default is None else str(default), spec.doc))
    return rows
