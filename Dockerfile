# pdp: the access decision point, served by gunicorn (`pdp serve`) as a non-root user.
#
#   docker build -t pdp .
#   docker run --rm -e PDP_DATABASE_URL=postgresql+psycopg://pdp:secret@db/pdp pdp db upgrade
#   docker run --rm -e PDP_DATABASE_URL=... pdp clients add afas-front --services afas
#   docker run -d -p 8000:8000 -e PDP_DATABASE_URL=postgresql+psycopg://pdp:secret@db/pdp pdp
#
# Two instances behind nginx with PostgreSQL and Redis: deploy/compose.yaml. Without
# PDP_DATABASE_URL the SQLite file /var/lib/pdp/pdp.sqlite3 is used (mount a volume at
# /var/lib/pdp to keep it). The decision log's segment files (PDP_DECISION_LOG_DIR,
# /var/lib/pdp/decision-log, a volume) hold every decision until it is shipped to the database,
# and must survive the container to be shipped after a crash: give each instance a named volume
# of its own there. RUN --mount needs BuildKit, the default builder since Docker Engine 23.
# tests/e2e/test_deploy.py runs this file's commands outside Docker.
#
# The base follows the Python minor version CI tests (3.11: .ci/run) at its newest patch
# release, on Debian 12: rebuild (docker build --pull) to take security fixes. Name the source
# commit for the pdp_build_info metric with --build-arg PDP_BUILD_COMMIT=$(git rev-parse HEAD).

# --- builder: pdp's wheel (with policies and migrations as package data), then the wheels of
# every dependency including the postgres extra (psycopg's binary wheel: no libpq to install),
# so that the runtime stage installs offline.
FROM python:3.11-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Only what the wheel is made of (pyproject.toml's packages): never deploy/.env or a database.
COPY pyproject.toml README.md ./
COPY pdp ./pdp
COPY adapters ./adapters
COPY policies ./policies
# requirements.txt names exactly the wheel just built, with its postgres extra.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && printf 'caf-pdp[postgres] @ file://%s\n' /wheels/caf_pdp-*.whl > /wheels/requirements.txt \
    && pip wheel --no-cache-dir --wheel-dir /wheels --requirement /wheels/requirements.txt

# --- runtime: a virtualenv holding pdp and its dependencies, nothing else of the build.
FROM python:3.11-slim-bookworm AS runtime
ARG PDP_BUILD_COMMIT=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/pdp/bin:$PATH \
    PDP_BIND=0.0.0.0:8000 \
    PDP_DECISION_LOG_DIR=/var/lib/pdp/decision-log \
    PDP_BUILD_COMMIT=${PDP_BUILD_COMMIT}
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/pdp \
    && /opt/pdp/bin/pip install --no-cache-dir --no-index --find-links=/wheels \
        --requirement /wheels/requirements.txt \
    && groupadd --system --gid 10001 pdp \
    && useradd --system --uid 10001 --gid pdp --home-dir /var/lib/pdp --create-home \
        --shell /usr/sbin/nologin pdp \
    && install --directory --owner=pdp --group=pdp --mode=0750 /var/lib/pdp/decision-log
# A volume (anonymous unless one is named): a named volume mounted here starts as a copy of
# this directory, owned by pdp.
VOLUME ["/var/lib/pdp/decision-log"]
# The default SQLite database (pdp.sqlite3) is created in the working directory.
WORKDIR /var/lib/pdp
USER 10001:10001
EXPOSE 8000
# /readyz: 503 (policy stale: store unreachable longer than PDP_MAX_STALENESS, or the database
# down) or no answer: unhealthy. /healthz (liveness) answers without touching the database.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; port = os.environ.get('PDP_BIND', '0.0.0.0:8000').rpartition(':')[2]; u.build_opener(u.ProxyHandler({})).open(f'http://127.0.0.1:{port}/readyz', timeout=4)"]
ENTRYPOINT ["pdp"]
CMD ["serve"]
