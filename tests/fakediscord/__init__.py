"""A protocol-level fake Discord (REST, gateway, CDN on 127.0.0.1) that unmodified discord.py talks to."""

from tests.fakediscord.server import Call, FakeDiscord, UploadedFile

__all__ = ["Call", "FakeDiscord", "UploadedFile"]
