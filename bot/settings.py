"""Settings from the environment, a `.env` file and an optional TOML file, validated once at start.

Each setting is declared once, as a field of `Settings`: its name and type, its default, the
environment variable, the parser that validates it and the sentence that documents it. Everything
else (the TOML keys, the known `.env` names, the README's configuration table) is derived from
those declarations.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from bot.errors import SettingsError
from bot.secrets import Secret, register_secret
from bot.settings_files import read_dotenv, read_toml, unknown_in_environment

BACKENDS = ("ideogram", "ideogram-legacy", "ideogram-edit", "runware", "task-proxy", "demo")
# Backends that run on this machine: no key, no URL, no network.
LOCAL_BACKENDS = ("demo",)
LOG_FORMATS = ("text", "json")
TASK_FORMATS = ("legacy", "v3")
# Where Runware's source image goes: its provider page shows top-level `referenceImages`, the
# model pages `inputs.referenceImages`; `auto` tries the first, then the second (runware.py).
RUNWARE_IMAGE_IN = ("top", "inputs", "auto")
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
    # Local Pillow variations of the input (bot/remix/backends/demo.py): try the bot for free.
    "demo": {"url": "", "path": "", "auth": "api-key", "model": ""},
}
# The legacy body's model at a task proxy when REMIXBOT_MODEL is unset: Ideogram's documented
# default, and the newest the resellers' pages list (the direct legacy backend defaults to V_3).
LEGACY_TASK_MODEL = "V_2"

# --- parsers: each turns a raw value into the setting's type, or raises one sentence ----------

Parser = Callable[[str, Any], Any]


def _str(name: str, raw: Any) -> str:
    return str(raw).strip()


def _secret(name: str, raw: Any) -> Secret | None:
    raw = str(raw).strip()
    return Secret(raw) if raw else None


def _int(lo: int, hi: int) -> Parser:
    def parse(name: str, raw: Any) -> int:
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


def _float(lo: float, hi: float) -> Parser:
    def parse(name: str, raw: Any) -> float:
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


def _bool(name: str, raw: Any) -> bool:
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}.")


def _choice(options: tuple[str, ...]) -> Parser:
    def parse(name: str, raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in options:
            raise SettingsError(f"{name} must be one of {', '.join(options)}, not {raw!r}.")
        return value

    return parse


def _hosts(name: str, raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    return tuple(str(h).strip().lower().strip("[]") for h in items if str(h).strip())


def _path(name: str, raw: Any) -> str:
    value = str(raw).strip()
    if value and not value.startswith("/"):
        raise SettingsError(f"{name} must be a path starting with '/', not {raw!r}.")
    return value


def _dir(name: str, raw: Any) -> Path:
    return Path(str(raw).strip()).expanduser()


DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")


def _database_url(name: str, raw: Any) -> Secret | None:
    value = str(raw).strip()
    if not value:
        return None
    if not value.startswith(DATABASE_SCHEMES):
        scheme = value.split(":", 1)[0] if ":" in value else value[:12]
        raise SettingsError(f"{name} must start with sqlite:/// or postgresql://, not {scheme!r}.")
    try:
        password = urlsplit(value).password
    except ValueError:  # never quoted: the URL may hold the password
        raise SettingsError(
            f"{name} cannot be read as a URL (check the brackets and the host); write it as"
            " postgresql://user:password@host/db, with @ : / [ ] in the password"
            " percent-encoded."
        ) from None
    register_secret(password)  # a connection error must never print it
    return Secret(value)


def _shards(name: str, raw: Any) -> tuple[int, ...]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    out: list[int] = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        if not item.isdigit() or int(item) > 65535:
            raise SettingsError(
                f"{name} must be shard numbers separated by commas (like 0,1), not {raw!r}."
            )
        out.append(int(item))
    if len(set(out)) != len(out):
        raise SettingsError(f"{name} names a shard twice: {raw!r}.")
    return tuple(out)


# --- declarations --------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """How one setting is read: its variable, the parser that validates it, what it means."""

    env: str
    parse: Parser
    doc: str
    # For settings some commands cannot do without: what to do when it is missing.
    missing: str = ""


def setting(env: str, default: Any, parse: Parser, doc: str, *, missing: str = "") -> Any:
    """Declare one field of `Settings`: its default plus its variable, parser and meaning."""
    return field(default=default, metadata={"spec": Spec(env, parse, doc, missing)})


@dataclass(frozen=True)
class Settings:
    """Every setting of the bot; build it with :func:`load_settings`."""

    # Backend
    backend: str = setting(
        "REMIXBOT_BACKEND",
        "ideogram",
        _choice(BACKENDS),
        "Remix backend: ideogram, ideogram-legacy, ideogram-edit, runware, task-proxy, or demo"
        " (no key, no network: local Pillow variations, to try the bot).",
    )
    backend_url: str = setting(
        "REMIXBOT_BACKEND_URL",
        "",
        _str,
        "Base URL of the backend (default per backend; required for task-proxy).",
    )
    api_key: Secret | None = setting(
        "REMIXBOT_API_KEY",
        None,
        _secret,
        "The backend's API key.",
        missing="put the backend's API key in the environment or .env.",
    )
    auth_scheme: str = setting(
        "REMIXBOT_AUTH_SCHEME",
        "",
        _choice(AUTH_SCHEMES),
        "api-key (Api-Key header) or bearer (Authorization: Bearer); default per backend.",
    )
    remix_path: str = setting(
        "REMIXBOT_REMIX_PATH",
        "",
        _path,
        "Overrides the endpoint path (for resellers); default per backend.",
    )
    model: str = setting(
        "REMIXBOT_MODEL",
        "",
        _str,
        f"Model for ideogram-legacy (V_1 … V_3, default {BACKEND_DEFAULTS['ideogram-legacy']['model']}),"
        f" the task-proxy's legacy body (V_1 … V_2_TURBO, default {LEGACY_TASK_MODEL}), ideogram-edit"
        f" (V_1 … V_2_TURBO, default {BACKEND_DEFAULTS['ideogram-edit']['model']}) and runware"
        f" (AIR id, default {BACKEND_DEFAULTS['runware']['model']}). One the backend cannot use"
        " stops the start and fails `remixbot check`; on a backend that takes none (ideogram,"
        " the task-proxy's v3 form, demo) it is ignored, with a warning.",
    )
    runware_image_in: str = setting(
        "REMIXBOT_RUNWARE_IMAGE_IN",
        "auto",
        _choice(RUNWARE_IMAGE_IN),
        "runware: where the source image goes: top (top-level referenceImages), inputs"
        " (inputs.referenceImages) or auto (top-level, and inside inputs once after a 400 that"
        " names them; the place the server takes is kept until the bot stops).",
    )
    task_submit_path: str = setting(
        "REMIXBOT_TASK_SUBMIT_PATH",
        "/ideogram/v1/ideogram-v3/remix",
        _path,
        "task-proxy: submit path.",
    )
    task_format: str = setting(
        "REMIXBOT_TASK_FORMAT",
        "",
        _choice(TASK_FORMATS),
        "task-proxy: submit body, legacy or v3 (default: from the submit path).",
    )
    # The only task query path the proxies we know document (the Kling-style envelope they reuse).
    task_query_path: str = setting(
        "REMIXBOT_TASK_QUERY_PATH",
        "/kling/v1/images/generations/{task_id}",
        _path,
        "task-proxy: query path with {task_id}.",
    )
    task_max_wait: float = setting(
        "REMIXBOT_TASK_MAX_WAIT",
        600.0,
        _float(1, 3600),
        "task-proxy: longest wait for a task, seconds.",
    )
    backend_timeout: float = setting(
        "REMIXBOT_BACKEND_TIMEOUT",
        180.0,
        _float(1, 900),
        "Longest wait for a synchronous remix call, seconds.",
    )
    # Result downloads
    trusted_hosts: tuple[str, ...] = setting(
        "REMIXBOT_TRUSTED_HOSTS",
        (),
        _hosts,
        "Hosts exempt from the private-address check on downloads (comma-separated).",
    )
    max_download_bytes: int = setting(
        "REMIXBOT_MAX_DOWNLOAD_BYTES",
        30 * 1024 * 1024,
        _int(1024, 1 << 31),
        "Largest result image accepted, bytes.",
    )
    download_timeout: float = setting(
        "REMIXBOT_DOWNLOAD_TIMEOUT",
        60.0,
        _float(1, 600),
        "Longest download of one result image, seconds.",
    )
    # Data
    data_dir: Path = setting(
        "REMIXBOT_DATA_DIR",
        Path("./data"),
        _dir,
        "Where the database, stored inputs and undelivered results live.",
    )
    retention_days: int = setting(
        "REMIXBOT_RETENTION_DAYS",
        30,
        _int(1, 3650),
        "Days stored input images (for rerolls) and undelivered results are kept.",
    )
    database_url: Secret | None = setting(
        "REMIXBOT_DATABASE_URL",
        None,
        _database_url,
        "The books: unset or sqlite:///path for a SQLite file (default: in the data directory),"
        " or postgresql://user:password@host/db for a PostgreSQL 15+ server several processes share.",
    )
    lease_seconds: float = setting(
        "REMIXBOT_LEASE_SECONDS",
        30.0,
        _float(3, 600),
        "PostgreSQL: a stopped process's jobs and backend slots are taken over after this long.",
    )
    # Image intake
    max_input_bytes: int = setting(
        "REMIXBOT_MAX_INPUT_BYTES",
        25 * 1000 * 1000,
        _int(1024, 1 << 30),
        "Largest input image accepted, bytes.",
    )
    max_input_pixels: int = setting(
        "REMIXBOT_MAX_INPUT_PIXELS",
        50 * 1000 * 1000,
        _int(1024, 178_000_000),
        "Largest input image accepted, pixels.",
    )
    max_side: int = setting(
        "REMIXBOT_MAX_SIDE",
        2048,
        _int(256, 8192),
        "Inputs are downscaled to at most this long side, pixels (JPEGs may land up to 5% under it).",
    )
    auto_aspect: bool = setting(
        "REMIXBOT_AUTO_ASPECT",
        True,
        _bool,
        "Pick the aspect ratio nearest the input when none is given.",
    )
    # Quotas
    default_limit: int = setting(
        "REMIXBOT_DEFAULT_LIMIT",
        25,
        _int(0, 1_000_000),
        "Images per user per period, by default (until `quota set-default`).",
    )
    quota_period: str = setting(
        "REMIXBOT_QUOTA_PERIOD",
        "daily",
        _choice(PERIODS),
        "daily, weekly or monthly (until `quota set-default`).",
    )
    reset_hour: int = setting(
        "REMIXBOT_RESET_HOUR", 0, _int(0, 23), "Hour (UTC) at which quota periods start."
    )
    # Discord
    discord_token: Secret | None = setting(
        "DISCORD_TOKEN",
        None,
        _secret,
        "The Discord bot token.",
        missing="copy the bot token from the Discord Developer Portal.",
    )
    discord_api_base: str = setting(
        "DISCORD_API_BASE",
        "https://discord.com/api/v10",
        _str,
        "Discord REST base URL (a REST proxy or a test fake).",
    )
    discord_gateway_url: str = setting(
        "DISCORD_GATEWAY_URL",
        "wss://gateway.discord.gg/",
        _str,
        "Discord gateway URL (a test fake).",
    )
    shards: tuple[int, ...] = setting(
        "REMIXBOT_SHARDS",
        (),
        _shards,
        "The Discord shards this process runs (like 0,1; needs REMIXBOT_SHARD_COUNT); default: all.",
    )
    shard_count: int = setting(
        "REMIXBOT_SHARD_COUNT",
        0,
        _int(0, 65536),
        "How many shards the bot runs over all its processes (0: one process, no sharding).",
    )
    max_images_per_job: int = setting(
        "REMIXBOT_MAX_IMAGES_PER_JOB", 4, _int(1, 8), "Cap on num_images for one /remix."
    )
    inflight_images: int = setting(
        "REMIXBOT_INFLIGHT_IMAGES",
        10,
        _int(1, 1000),
        "Images in flight at the backend at once.",
    )
    user_queue_cap: int = setting(
        "REMIXBOT_USER_QUEUE_CAP", 3, _int(1, 100), "Jobs one user may have queued."
    )
    max_wait: float = setting(
        "REMIXBOT_MAX_WAIT",
        600.0,
        _float(1.0, 86_400.0),
        "A remix is accepted while its estimated start is within this many seconds.",
    )
    queue_max: int = setting(
        "REMIXBOT_QUEUE_MAX",
        2000,
        _int(1, 100_000),
        "Jobs queued in all, a memory bound far above what REMIXBOT_MAX_WAIT admits.",
    )
    log_level: str = setting(
        "REMIXBOT_LOG_LEVEL",
        "info",
        _choice(("debug", "info", "warning", "error")),
        "Log level: debug, info, warning or error.",
    )
    log_format: str = setting(
        "REMIXBOT_LOG_FORMAT",
        "text",
        _choice(LOG_FORMATS),
        "Log lines as text, or json (one object per line, with job and guild on a job's lines).",
    )
    # Operations: the HTTP endpoint (bot/web/)
    http_port: int = setting(
        "REMIXBOT_HTTP_PORT",
        0,
        _int(0, 65535),
        "Port of /healthz, /metrics and the admin dashboard; 0 (the default) turns them off.",
    )
    http_host: str = setting(
        "REMIXBOT_HTTP_HOST",
        "127.0.0.1",
        _str,
        "Address the HTTP endpoint binds; 0.0.0.0 exposes it beyond this machine.",
    )
    admin_token: Secret | None = setting(
        "REMIXBOT_ADMIN_TOKEN",
        None,
        _secret,
        "Password of the admin dashboard; when unset, the first start makes one and keeps it in"
        " the file dashboard-password in the data directory, readable only by its owner.",
    )

    @property
    def needs_api_key(self) -> bool:
        """Whether the backend calls out with a key (the demo backend runs locally)."""
        return self.backend not in LOCAL_BACKENDS

    @property
    def db_path(self) -> Path:
        """The SQLite file: REMIXBOT_DATABASE_URL's path, or the one in the data directory."""
        url = self.database_url.get() if self.database_url else ""
        if url.startswith("sqlite:///"):
            return Path(url.removeprefix("sqlite:///")).expanduser()
        return self.data_dir / "remixbot.sqlite3"

    @property
    def database(self) -> Path | str:
        """Where the books are, as `Store.open` takes it: the SQLite file, or the PostgreSQL URL."""
        url = self.database_url.get() if self.database_url else ""
        return url if url.startswith(DATABASE_SCHEMES[1:]) else self.db_path

    @property
    def database_shown(self) -> str:
        """The books' location for messages and logs: the file, or the URL without its password."""
        return shown_database(self.database)

    def require_api_key(self) -> str:
        """Return the backend API key, or say which setting is missing."""
        return _required(self, "api_key").get()

    def require_discord_token(self) -> str:
        """Return the bot token, or say which setting is missing."""
        return _required(self, "discord_token").get()


SPECS: dict[str, Spec] = {f.name: f.metadata["spec"] for f in dataclasses.fields(Settings)}
# The variable that names the TOML file: read from .env or the environment, not a setting itself.
CONFIG_ENV = "REMIXBOT_CONFIG"


def missing_sentence(name: str) -> str:
    """The sentence for a required setting that is not set."""
    spec = SPECS[name]
    return f"{spec.env} is not set; {spec.missing}"


def _required(settings: Settings, name: str) -> Secret:
    value = getattr(settings, name)
    if not value:
        raise SettingsError(missing_sentence(name))
    return value


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    dotenv: Path | None = Path(".env"),
    overrides: Mapping[str, Any] | None = None,
    require: Collection[str] = (),
) -> Settings:
    """Build settings: TOML file (REMIXBOT_CONFIG) < .env < environment < overrides.

    Every problem found (unreadable lines, unknown `REMIXBOT_` names in the files or the
    environment, invalid values, settings that contradict each other, and the `require`d
    settings that are missing) is reported at once: one SettingsError whose message has one
    sentence per line.
    """
    problems: list[str] = []
    env = dict(os.environ if environ is None else environ)
    known_env = {spec.env for spec in SPECS.values()} | {CONFIG_ENV}
    merged: dict[str, str] = {}
    if dotenv is not None:
        merged.update(read_dotenv(dotenv, known_env, problems))
    unknown_in_environment(env, known_env, problems)
    merged.update(env)

    raw: dict[str, tuple[str, Any]] = {}  # field -> (source name for messages, value)
    config = merged.get(CONFIG_ENV)
    if config:
        path = Path(config).expanduser()
        for key, value in read_toml(path, SPECS, problems).items():
            raw[key] = (f"{key} in {path.name}", value)
    for name, spec in SPECS.items():
        if merged.get(spec.env, "") != "":
            raw[name] = (spec.env, merged[spec.env])

    values: dict[str, Any] = {}
    for name, (source, value) in raw.items():
        try:
            values[name] = SPECS[name].parse(source, value)
        except SettingsError as exc:
            problems.append(str(exc))
    if overrides:
        values.update(overrides)
    settings = _finish(Settings(**values), problems)
    # The demo backend runs here: a command that requires the key runs without one there.
    needed = [n for n in require if n != "api_key" or settings.needs_api_key]
    problems.extend(missing_sentence(name) for name in needed if not getattr(settings, name))
    if problems:
        raise SettingsError("\n".join(problems))
    return settings


def shown_database(database: Path | str) -> str:
    """A database location safe to print: a SQLite path, or a URL with its password removed."""
    if isinstance(database, Path):
        return str(database)
    parts = urlsplit(database)
    netloc = parts.netloc.rsplit("@", 1)
    if len(netloc) == 2:
        user = netloc[0].split(":", 1)[0]
        return parts._replace(netloc=f"{user}@{netloc[1]}", query="").geturl()
    return parts._replace(query="").geturl()


def _split(url: str) -> SplitResult | None:
    """`url`'s parts, or None when it cannot be parsed at all (an unclosed `[`, say)."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _finish(s: Settings, problems: list[str]) -> Settings:
    """Fill per-backend defaults and check settings that depend on each other."""
    defaults = BACKEND_DEFAULTS[s.backend]
    changes: dict[str, Any] = {}
    url = (s.backend_url or defaults["url"]).rstrip("/")
    parts = _split(url)
    if s.backend in LOCAL_BACKENDS:
        pass  # runs here: no URL to check
    elif not url:
        problems.append(
            f"REMIXBOT_BACKEND_URL is required for the {s.backend} backend; give the proxy's base URL."
        )
    elif parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"REMIXBOT_BACKEND_URL must be an http(s) URL, not {url!r}.")
    changes["backend_url"] = url
    changes["auth_scheme"] = s.auth_scheme or defaults["auth"]
    changes["remix_path"] = s.remix_path or defaults["path"]
    changes["model"] = s.model or defaults["model"]
    if "{task_id}" not in s.task_query_path:
        problems.append(
            f"REMIXBOT_TASK_QUERY_PATH must contain {{task_id}}, not {s.task_query_path!r}."
        )
    for name, allowed in (
        ("discord_api_base", ("http", "https")),
        ("discord_gateway_url", ("ws", "wss")),
    ):
        value = getattr(s, name)
        parts = _split(value)
        if parts is None or parts.scheme not in allowed:
            env = SPECS[name].env
            problems.append(f"{env} must be a {' or '.join(allowed)} URL, not {value!r}.")
    changes["discord_api_base"] = s.discord_api_base.rstrip("/")
    if s.shards and not s.shard_count:
        problems.append("REMIXBOT_SHARDS needs REMIXBOT_SHARD_COUNT, the number of shards in all.")
    elif any(n >= s.shard_count for n in s.shards):
        problems.append(
            f"REMIXBOT_SHARDS must be below REMIXBOT_SHARD_COUNT ({s.shard_count}), "
            f"not {','.join(map(str, s.shards))}."
        )
    changes["log_level"] = s.log_level.upper()
    return dataclasses.replace(s, **changes)


def _shown(value: Any) -> str:
    """A default as the README shows it."""
    if value is None or value == "" or value == ():
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(value)
    return f"{value}"


def settings_table() -> list[tuple[str, str, str]]:
    """(environment variable, default, meaning) rows, one per declared setting, in order."""
    return [
        (spec.env, _shown(f.default), spec.doc)
        for f in dataclasses.fields(Settings)
        for spec in [f.metadata["spec"]]
    ]


def markdown_table() -> str:
    """The README's configuration table, generated from the declarations."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for env, default, doc in settings_table():
        shown = default if default == "—" else f"`{default}`"
        lines.append(f"| `{env}` | {shown} | {doc} |")
    return "\n".join(lines)


if __name__ == "__main__":  # `python -m bot.settings` prints the README's table
    print(markdown_table())
