"""Settings: sources, precedence, validation messages and secret redaction."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import pytest

from bot.errors import SettingsError
from bot.log import RedactingFilter
from bot.settings import CONFIG_ENV, SPECS, Settings, load_settings, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_per_backend() -> None:
    s = load_settings({}, dotenv=None)
    assert (s.backend, s.backend_url, s.auth_scheme, s.remix_path) == (
        "ideogram",
        "https://api.ideogram.ai",
        "api-key",
        "/v1/ideogram-v3/remix",
    )
    r = load_settings({"REMIXBOT_BACKEND": "runware"}, dotenv=None)
    assert (r.backend_url, r.auth_scheme, r.model) == (
        "https://api.runware.ai",
        "bearer",
        "ideogram:4@2",
    )
    legacy = load_settings(
        {
            "REMIXBOT_BACKEND": "ideogram-legacy",
            "REMIXBOT_REMIX_PATH": "/ideogram/remix",
            "REMIXBOT_AUTH_SCHEME": "bearer",
        },
        dotenv=None,
    )
    assert (legacy.remix_path, legacy.auth_scheme, legacy.model) == (
        "/ideogram/remix",
        "bearer",
        "V_3",
    )


def test_ideogram_edit_defaults_and_task_format() -> None:
    edit = load_settings(
        {"REMIXBOT_BACKEND": "ideogram-edit", "REMIXBOT_BACKEND_URL": "https://reseller.example"},
        dotenv=None,
    )
    assert (edit.remix_path, edit.auth_scheme, edit.model) == (
        "/ideogram/edit",
        "bearer",
        "V_2_TURBO",
    )
    with pytest.raises(
        SettingsError, match="REMIXBOT_BACKEND_URL is required for the ideogram-edit"
    ):
        load_settings({"REMIXBOT_BACKEND": "ideogram-edit"}, dotenv=None)
    proxy = load_settings(
        {
            "REMIXBOT_BACKEND": "task-proxy",
            "REMIXBOT_BACKEND_URL": "https://reseller.example",
            "REMIXBOT_TASK_FORMAT": "Legacy",
        },
        dotenv=None,
    )
    assert proxy.task_format == "legacy"
    with pytest.raises(SettingsError, match="REMIXBOT_TASK_FORMAT must be one of legacy, v3"):
        load_settings({"REMIXBOT_TASK_FORMAT": "v2"}, dotenv=None)


def test_precedence_toml_then_dotenv_then_environment(tmp_path: Path) -> None:
    toml = tmp_path / "remixbot.toml"
    toml.write_text(
        'backend = "runware"\ndefault_limit = 7\nmax_side = 1024\ntrusted_hosts = ["127.0.0.1"]\n'
    )
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        '# comment\nexport REMIXBOT_DEFAULT_LIMIT="9"\nREMIXBOT_API_KEY=from-dotenv\n'
    )
    s = load_settings({"REMIXBOT_CONFIG": str(toml), "REMIXBOT_MAX_SIDE": "1536"}, dotenv=dotenv)
    assert s.backend == "runware"
    assert s.default_limit == 9  # .env beats TOML
    assert s.max_side == 1536  # environment beats TOML
    assert s.trusted_hosts == ("127.0.0.1",)
    assert s.api_key is not None and s.api_key.get() == "from-dotenv"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"REMIXBOT_BACKEND": "dalle"},
            "REMIXBOT_BACKEND must be one of ideogram, ideogram-legacy, ideogram-edit, runware, "
            "task-proxy, demo, not 'dalle'.",
        ),
        ({"REMIXBOT_RESET_HOUR": "25"}, "REMIXBOT_RESET_HOUR must be from 0 to 23, not 25."),
        (
            {"REMIXBOT_DEFAULT_LIMIT": "lots"},
            "REMIXBOT_DEFAULT_LIMIT must be a whole number from 0 to 1000000, not 'lots'.",
        ),
        (
            {"REMIXBOT_BACKEND": "task-proxy"},
            "REMIXBOT_BACKEND_URL is required for the task-proxy backend; give the proxy's base URL.",
        ),
        (
            {"REMIXBOT_BACKEND_URL": "ftp://x"},
            "REMIXBOT_BACKEND_URL must be an http(s) URL, not 'ftp://x'.",
        ),
        (
            {"REMIXBOT_BACKEND_URL": "http://[reseller.example"},
            "REMIXBOT_BACKEND_URL must be an http(s) URL, not 'http://[reseller.example'.",
        ),
        (
            {"DISCORD_API_BASE": "http://[proxy/api"},
            "DISCORD_API_BASE must be a http or https URL, not 'http://[proxy/api'.",
        ),
        (
            {"REMIXBOT_TASK_QUERY_PATH": "/tasks"},
            "REMIXBOT_TASK_QUERY_PATH must contain {task_id}, not '/tasks'.",
        ),
        (
            {"REMIXBOT_AUTO_ASPECT": "maybe"},
            "REMIXBOT_AUTO_ASPECT must be true or false, not 'maybe'.",
        ),
        (
            {"REMIXBOT_RUNWARE_IMAGE_IN": "both"},
            "REMIXBOT_RUNWARE_IMAGE_IN must be one of top, inputs, auto, not 'both'.",
        ),
    ],
)
def test_invalid_settings_get_one_clear_sentence(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env, dotenv=None)
    assert str(info.value) == message


def test_a_database_url_that_cannot_be_parsed_is_one_sentence_without_the_password() -> None:
    # urlsplit raises on an unclosed "[" (a password typed with brackets, unencoded); it was a
    # traceback. The sentence must not quote the URL: it holds the password.
    url = "postgresql://remixbot:pa[ss w0rd@db/remixbot"
    with pytest.raises(SettingsError) as info:
        load_settings({"REMIXBOT_DATABASE_URL": url, "REMIXBOT_BACKEND": "demo"}, dotenv=None)
    assert str(info.value) == (
        "REMIXBOT_DATABASE_URL cannot be read as a URL (check the brackets and the host); write"
        " it as postgresql://user:password@host/db, with @ : / [ ] in the password"
        " percent-encoded."
    )
    assert "pa[ss" not in str(info.value)


def test_unknown_toml_key_is_named(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("bakend = 'x'\n")
    with pytest.raises(SettingsError, match="Unknown setting 'bakend'"):
        load_settings({"REMIXBOT_CONFIG": str(toml)}, dotenv=None)


def test_secrets_never_in_repr_or_logs() -> None:
    key = "sk-live-VERYSECRET-0123456789"
    token = "MTIzNDU2Nzg5.discord-bot-token.abcdefghij"
    s = load_settings({"REMIXBOT_API_KEY": key, "DISCORD_TOKEN": token}, dotenv=None)
    assert key not in repr(s) and token not in repr(s)
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "key=%s token=%s", (key, token), None
    )
    RedactingFilter().filter(record)
    assert key not in record.getMessage() and token not in record.getMessage()


def test_urls_lose_tokens_and_signatures() -> None:
    text = (
        "PATCH http://127.0.0.1:1/api/v10/webhooks/123456/aW50ZXJhY3Rpb246MTIzOmFiY2RlZmdoaWprbG1ub3A/messages/@original "
        "GET https://ideogram.ai/api/images/ephemeral/x.png?exp=1743867804&sig=e13e12677633f646d853 "
        "GET https://cdn.discordapp.com/attachments/1/2/a.png?ex=65&is=66&hm=abcdef0123"
    )
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, text, None, None)
    RedactingFilter().filter(record)
    out = record.getMessage()
    assert "aW50ZXJhY3Rpb246MTIzOmFiY2RlZmdoaWprbG1ub3A" not in out
    assert "e13e12677633f646d853" not in out and "abcdef0123" not in out
    assert "/webhooks/123456/[REDACTED]" in out


def test_event_dicts_lose_their_tokens() -> None:
    text = "WebSocket Event: {'op': 0, 'd': {'id': '1', 'type': 2, 'token': 'aW50ZXJhY3Rpb246abc'}}"
    record = logging.LogRecord("discord.gateway", logging.DEBUG, __file__, 1, text, None, None)
    RedactingFilter().filter(record)
    assert "aW50ZXJhY3Rpb246abc" not in record.getMessage()
    assert "'token': '[REDACTED]'" in record.getMessage()


# --- settings declared once, and the README that lists them ---------------------------------


def test_each_setting_is_declared_once_with_everything_about_it() -> None:
    fields = dataclasses.fields(Settings)
    assert [f.name for f in fields] == list(SPECS)  # the spec is the field's own metadata
    envs = [spec.env for spec in SPECS.values()]
    assert len(set(envs)) == len(envs)
    for f in fields:
        spec = SPECS[f.name]
        assert spec.doc.endswith(".") and spec.env.isupper()
        assert f.type  # the type is the field's annotation
        default = f.default
        if default not in (None, "", ()):  # a declared default passes its own validation
            raw = ",".join(default) if isinstance(default, tuple) else str(default)
            assert spec.parse(spec.env, raw) == default, f.name


def _readme_table() -> str:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("| Variable | Default | Meaning |")
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def test_readme_lists_exactly_the_declared_settings_with_their_defaults() -> None:
    assert _readme_table() == markdown_table(), (
        "README.md's configuration table is out of date; paste the output of"
        " `python -m bot.settings` over it."
    )


# --- .env and TOML files as people write them -------------------------------------------------


def test_dotenv_follows_python_dotenv_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# a comment line\n"
        "REMIXBOT_DATA_DIR=./data   # inline comment, stripped\n"
        "export REMIXBOT_DEFAULT_LIMIT='7'\n"
        'REMIXBOT_API_KEY="sk # not a comment inside quotes"\n'
        "REMIXBOT_TRUSTED_HOSTS=127.0.0.1,${EXTRA_HOST}\n"
        "\n"
        "OTHER_TOOL_SETTING=whatever\n"
    )
    monkeypatch.setenv("EXTRA_HOST", "fake.test")  # ${VAR} comes from the process environment
    s = load_settings({}, dotenv=dotenv)
    assert s.data_dir == Path("data") and s.default_limit == 7
    assert s.api_key is not None and s.api_key.get() == "sk # not a comment inside quotes"
    assert s.trusted_hosts == ("127.0.0.1", "fake.test")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "REMIXBOT_DEFALT_LIMIT=3\n",
            "Unknown setting 'REMIXBOT_DEFALT_LIMIT' in {env}, line 1; did you mean"
            " 'REMIXBOT_DEFAULT_LIMIT'?",
        ),
        (
            "\nREMIXBOT_NOTHING_LIKE_IT=3\n",
            "Unknown setting 'REMIXBOT_NOTHING_LIKE_IT' in {env}, line 2; the README's"
            " Configuration table lists every setting.",
        ),
        (
            "# fine\nDISCORD_TOKEN abc-secret\n",
            "Cannot read {env}, line 2: write each setting as NAME=value (quote a value with"
            " spaces, start a comment with #).",
        ),
        (
            "DISCORD_TOKEN\n",
            "Cannot read {env}, line 1: DISCORD_TOKEN has no value; write it as"
            " DISCORD_TOKEN=value.",
        ),
    ],
)
def test_dotenv_typos_name_the_file_and_the_line(tmp_path: Path, text: str, problem: str) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(text)
    with pytest.raises(SettingsError) as info:
        load_settings({}, dotenv=dotenv)
    assert str(info.value) == problem.format(env=dotenv)
    assert "abc-secret" not in str(info.value)


def test_unknown_remixbot_names_in_the_environment_are_reported(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("REMIXBOT_MAX_SIDES=1024\n")
    env = {
        "REMIXBOT_DEFALT_LIMIT": "4",
        "REMIXBOT_NOTHING_LIKE_IT": "",
        "REMIXBOT_DEFAULT_LIMIT": "5",
        "REMIXBOT_CONFIG": "",  # names the TOML file: known, though not a setting
        "DISCORD_TOKN": "x",  # not our prefix: other tools share the environment
        "COMPOSE_PROJECT_NAME": "remixbot",
    }
    with pytest.raises(SettingsError) as info:
        load_settings(env, dotenv=dotenv)
    assert str(info.value).splitlines() == [
        f"Unknown setting 'REMIXBOT_MAX_SIDES' in {dotenv}, line 1; did you mean"
        " 'REMIXBOT_MAX_SIDE'?",
        "Unknown setting 'REMIXBOT_DEFALT_LIMIT' in the environment; did you mean"
        " 'REMIXBOT_DEFAULT_LIMIT'?",
        "Unknown setting 'REMIXBOT_NOTHING_LIKE_IT' in the environment; the README's"
        " Configuration table lists every setting.",
    ]
    assert load_settings({"DISCORD_TOKN": "x", "PATH": "/bin"}, dotenv=None).default_limit == 25


# Misspellings the settings tests make on purpose; every other REMIXBOT_ name is a setting.
DELIBERATE_TYPOS = {"REMIXBOT_DEFALT_LIMIT", "REMIXBOT_NOTHING_LIKE_IT", "REMIXBOT_MAX_SIDES"}


def test_the_repository_sets_no_remixbot_variable_that_is_not_a_setting() -> None:
    """Tests, scripts, CI and benchmarks must not use the settings' prefix for their own
    variables (a test-only switch is TEST_…): every REMIXBOT_ name would be reported."""
    root = Path(__file__).resolve().parents[1]
    known = {spec.env for spec in SPECS.values()} | {CONFIG_ENV}
    found: dict[str, str] = {}
    for folder in ("tests", "scripts", ".ci", "bench", "bot", "cogs"):
        for path in (root / folder).rglob("*"):
            if path.is_file() and path.suffix in ("", ".py", ".sh", ".toml", ".yaml", ".yml"):
                text = path.read_text(encoding="utf-8", errors="replace")
                for name in re.findall(r"REMIXBOT_[A-Z0-9_]*[A-Z0-9]", text):
                    found.setdefault(name, str(path.relative_to(root)))
    for extra in ("Dockerfile", "compose.yaml"):
        for name in re.findall(r"REMIXBOT_[A-Z0-9_]*[A-Z0-9]", (root / extra).read_text()):
            found.setdefault(name, extra)
    strays = {name: where for name, where in found.items() if name not in known}
    assert set(strays) <= DELIBERATE_TYPOS, strays


def test_unknown_toml_key_names_the_line_like_dotenv(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('backend = "runware"\n\nbakend = "x"\n')
    with pytest.raises(SettingsError) as info:
        load_settings({"REMIXBOT_CONFIG": str(toml)}, dotenv=None)
    assert str(info.value) == f"Unknown setting 'bakend' in {toml}, line 3; did you mean 'backend'?"


def test_every_problem_at_once_one_sentence_a_line(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("max_side = 3\n")
    dotenv = tmp_path / ".env"
    dotenv.write_text("REMIXBOT_QUOTA_PERIOD=yearly\nnonsense line\n")
    env = {"REMIXBOT_CONFIG": str(toml), "REMIXBOT_BACKEND": "task-proxy"}
    with pytest.raises(SettingsError) as info:
        load_settings(env, dotenv=dotenv, require=("discord_token", "api_key"))
    assert str(info.value).splitlines() == [
        f"Cannot read {dotenv}, line 2: write each setting as NAME=value (quote a value with"
        " spaces, start a comment with #).",
        "max_side in c.toml must be from 256 to 8192, not 3.",
        "REMIXBOT_QUOTA_PERIOD must be one of daily, weekly, monthly, not 'yearly'.",
        "REMIXBOT_BACKEND_URL is required for the task-proxy backend; give the proxy's base URL.",
        "DISCORD_TOKEN is not set; copy the bot token from the Discord Developer Portal.",
        "REMIXBOT_API_KEY is not set; put the backend's API key in the environment or .env.",
    ]
