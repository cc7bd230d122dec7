"""/remix and rerolls end to end: real bot, real services, fake Discord and fake remix server."""

from __future__ import annotations

from pathlib import Path

from tests.fakediscord.helpers import png_bytes
from tests.remixworld import running_world


async def test_remix_happy_path_posts_files_and_settles(tmp_path: Path) -> None:
    async with running_world(tmp_path / "data") as w:
        inter = await w.slash_remix(png_bytes(320, 200), num_images=2, style_type="DESIGN")
        msg = await w.result_message(inter)
        # Deferred first: the callback (type 5) precedes every other call for this interaction.
        mine = [c for c in w.discord.calls if inter.token in c.path or inter.id in c.path]
        assert mine[0].path.endswith("/callback") and mine[0].json == {"type": 5}
        assert len(msg.attachments) == 2
        assert all(
            a.data[:8] == b"\x89PNG\r\n\x1a\n" or a.data[:3] == b"\xff\xd8\xff"
            for a in msg.attachments
        )
        assert any("remix:reroll:" in c for c in msg.custom_ids())
        sent = w.remix.last()
        assert sent.field("prompt") == "a watercolor cat"
        assert sent.field("num_images") == "2" and sent.field("style_type") == "DESIGN"
        assert sent.field("aspect_ratio") == "16x10"  # nearest the 320x200 input
        jobs = await w.jobs_final(1)
        assert [(j.state, j.images_delivered) for j in jobs] == [("delivered", 2)]
        assert await w.books_balance() == []
