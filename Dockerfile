# syntax=docker/dockerfile:1
# Remixbot in a container. Build and run (docs/deploy.md has compose and systemd):
#   docker build -t remixbot .
#   docker run --env-file .env -v remixbot-data:/data --stop-timeout 30 remixbot
# The bot drains running remixes for up to 20 s on SIGTERM: allow more than Docker's default 10 s.
# tests/test_container.py runs this file's build and start steps without a Docker daemon.

# --- stage 1: build the wheel, exactly what `pip install .` installs ------------------------
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- stage 2: a slim runtime with only the installed wheel ------------------------------------
FROM python:3.11-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="Remixbot" \
      org.opencontainers.image.description="A self-hosted Discord bot that remixes members' images with Ideogram and compatible backends." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.documentation="README.md and docs/deploy.md in the source"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 REMIXBOT_DATA_DIR=/data
COPY --from=build /wheels /wheels
# The [heif] extra: iPhone photos (HEIC) are decoded, not refused.
RUN pip install --no-cache-dir "$(ls /wheels/remixbot-*.whl)[heif]" && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin remixbot \
    && mkdir -p /data && chown remixbot /data
USER remixbot
WORKDIR /data
VOLUME ["/data"]
# /metrics, /healthz and /admin, when REMIXBOT_HTTP_PORT=8080 and REMIXBOT_HTTP_HOST=0.0.0.0 are set.
EXPOSE 8080
# Asks /healthz when REMIXBOT_HTTP_PORT is set; healthy by definition when the endpoint is off.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "bot.web.healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["remixbot"]
CMD ["run"]
