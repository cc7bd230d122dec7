"""Settings: sources, precedence, validation messages and secret redaction."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.errors import SettingsError
from bot.log import RedactingFilter
from bot.settings import load_settings


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
            "task-proxy, not 'dalle'.",
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
            {"REMIXBOT_TASK_QUERY_PATH": "/tasks"},
            "REMIXBOT_TASK_QUERY_PATH must contain {task_id}, not '/tasks'.",
        ),
        (
            {"REMIXBOT_AUTO_ASPECT": "maybe"},
            "REMIXBOT_AUTO_ASPECT must be true or false, not 'maybe'.",
        ),
    ],
)
def test_invalid_settings_get_one_clear_sentence(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env, dotenv=None)
    assert str(info.value) == message


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
