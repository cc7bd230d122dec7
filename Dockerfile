# Remixbot container: `docker build -t remixbot . && docker run --env-file .env -v remixbot-data:/data --stop-timeout 30 remixbot`
# (the bot drains running remixes for up to 20 s on SIGTERM: allow more than Docker's default 10 s)
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 REMIXBOT_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install --no-cache-dir . && useradd --system --home /data remixbot && mkdir -p /data && chown remixbot /data
USER remixbot
VOLUME ["/data"]
ENTRYPOINT ["remixbot"]
CMD ["run"]
