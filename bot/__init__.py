"""Remixbot: a self-hosted Discord bot that remixes members' images."""

__version__ = "0.1.0"
