# One image for migrate, alert-runner and consumer: the package is built and installed here,
# once; nothing is installed when a container starts. `docker compose build` builds it.
# Base images pinned to an exact Python and Debian release.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
# loader/sql is a symlink to ../sql: copy both, the wheel gets real files.
COPY pyproject.toml README.md LICENSE ./
COPY sql ./sql
COPY loader ./loader
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --no-create-home --shell /usr/sbin/nologin tsfleet
USER tsfleet
WORKDIR /tmp
CMD ["tsfleet", "--help"]
