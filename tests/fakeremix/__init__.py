"""A fake remix server (aiohttp on 127.0.0.1) speaking every wire format, with faults on demand.

Use `running_fake()` in tests, or `python -m tests.fakeremix --port N` from another process
(control it over HTTP under /_control/).
"""

from tests.fakeremix.server import API_KEY, FakeRemix, Fault, Recorded, running_fake

__all__ = ["API_KEY", "FakeRemix", "Fault", "Recorded", "running_fake"]
