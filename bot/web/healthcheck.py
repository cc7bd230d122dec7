"""`python -m bot.web.healthcheck`: the container's HEALTHCHECK. Exit 0 when /healthz answers
200, or when the endpoint is off (REMIXBOT_HTTP_PORT unset: nothing to ask); 1 otherwise, with
the endpoint's reason. Standard library only, so it costs little every 30 seconds."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from bot.errors import SettingsError
from bot.settings import load_settings

TIMEOUT = 4.0


def main() -> int:
    """Ask /healthz once; print its line; exit 0 if healthy or off."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    if not settings.http_port:
        print("the HTTP endpoint is off (REMIXBOT_HTTP_PORT unset): nothing to check")
        return 0
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "", "::") else settings.http_host
    url = f"http://{host}:{settings.http_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            print(resp.read().decode("utf-8", "replace").strip())
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.read().decode("utf-8", "replace").strip(), file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url} does not answer ({exc})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
