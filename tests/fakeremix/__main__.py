"""`python -m tests.fakeremix --port N`: run the fake remix server until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from tests.fakeremix.server import API_KEY, running_fake


async def _serve(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with running_fake(host, port) as fake:
        # The parent reads this line to learn the URL; the key is the fake's fixed test key.
        print(f"READY {fake.base_url} key={API_KEY}", flush=True)
        await stop.wait()


def main() -> None:
    """Parse --host/--port and serve."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakeremix")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()
    asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
