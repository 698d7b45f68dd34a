# the image every fly.toml process group runs (api, worker, jetstream).
# slim, non-root, dependencies installed from uv.lock exactly (`--locked`).
FROM python:3.11-slim AS build

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir "uv==0.13.8"
WORKDIR /app
# dependencies first, so a code change does not reinstall them
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY engine ./engine
COPY jetstream ./jetstream
COPY worker ./worker
RUN uv sync --locked --no-dev

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 plyr
WORKDIR /app
COPY --from=build --chown=plyr:plyr /app /app
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    OPENBLAS_NUM_THREADS=1 \
    API_HOST=0.0.0.0
USER plyr
EXPOSE 8000
# fly.toml's [processes] picks the subcommand; this default serves the API
CMD ["plyr-recs", "api"]
