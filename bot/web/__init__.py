"""The HTTP endpoint of `remixbot run`: /healthz, /metrics and the admin dashboard (aiohttp)."""
