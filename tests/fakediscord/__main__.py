"""`python -m tests.fakediscord [--port N]`: serve the fake Discord until SIGINT/SIGTERM.

Prints one JSON line with DISCORD_TOKEN, DISCORD_API_BASE and DISCORD_GATEWAY_URL (for a bot or a
benchmark in another process), then serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from tests.fakediscord.server import FakeDiscord


async def _serve(port: int, heartbeat_ms: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    fake = await FakeDiscord(heartbeat_interval_ms=heartbeat_ms).start(port)
    try:
        print(json.dumps(fake.env()), flush=True)
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> int:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakediscord")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: free)")
    parser.add_argument("--heartbeat-ms", type=int, default=5000, help="HELLO heartbeat interval")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port, args.heartbeat_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
