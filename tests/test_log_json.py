"""REMIXBOT_LOG_FORMAT=json: one JSON object per line; a job's lines carry its id and guild."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from bot.log import job_context, setup_logging
from bot.settings import load_settings
from tests.fakediscord.helpers import png_bytes
from tests.remixworld import running_world


def test_json_lines_are_objects_with_job_context_and_redaction() -> None:
    stream = io.StringIO()
    handler = setup_logging("INFO", stream=stream, fmt="json")
    log = logging.getLogger("remixbot.test")
    try:
        log.info("plain line")
        with job_context(41, 7):
            log.warning("about the job\nwith a second line: %s", "https://x.test/a.png?sig=abc123")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    plain, job, failed = (json.loads(line) for line in lines)
    assert plain["message"] == "plain line" and "job_id" not in plain
    assert plain["level"] == "info" and plain["logger"] == "remixbot.test"
    assert plain["time"].endswith("Z")
    assert (job["job_id"], job["guild_id"]) == (41, 7)
    assert "abc123" not in lines[1] and "sig=[REDACTED]" in job["message"]
    assert "ValueError: boom" in failed["exception"]


def test_log_format_setting() -> None:
    assert load_settings({}, dotenv=None).log_format == "text"
    assert load_settings({"REMIXBOT_LOG_FORMAT": "JSON"}, dotenv=None).log_format == "json"


async def test_every_line_of_a_job_carries_its_id_and_guild(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = setup_logging("DEBUG", stream=stream, fmt="json")
    try:
        async with running_world(tmp_path / "data") as w:
            w.remix.fail_next("429_rate", retry_after="0")  # logged from inside the backend call
            inter = await w.slash_remix(png_bytes())
            await w.result_message(inter)
            [job] = await w.jobs_final(1)
    finally:
        logging.getLogger().removeHandler(handler)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(entries) > 20
    about = [e for e in entries if "429 from the backend" in e["message"]]
    assert about, "the backend's 429 was logged"
    assert all((e["job_id"], e["guild_id"]) == (job.id, job.guild_id) for e in about)
    assert job.guild_id is not None
    # No line outside a job claims to be about one.
    assert all(e.get("job_id") in (None, job.id) for e in entries)
