# wsh server image: a slim Python base, the tools sessions need, a non-root user.
#   docker build -t wsh .
#   docker run --rm -p 7600:7600 -e WSH_TOKEN=... wsh
# docs/DEPLOY.md says more. CI lints this file (hadolint); it cannot build it
# (no container runtime there).
FROM python:3.11-slim-bookworm

# What a session's shell usually wants: bash, a pager, an editor, procps
# (ps, kill) and git; tini reaps what sessions leave behind as PID 1.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        bash less vim-tiny procps git ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --shell /bin/bash wsh

WORKDIR /opt/wsh
COPY pyproject.toml README.md ./
COPY wsh ./wsh
COPY generated ./generated
RUN pip install --no-cache-dir . \
    && rm -rf /opt/wsh/build

USER 10001:10001
WORKDIR /home/wsh
ENV WSH_LISTEN=0.0.0.0:7600 \
    WSH_CONFIG=/home/wsh/.config/wsh/server.toml \
    PYTHONUNBUFFERED=1
EXPOSE 7600 9090
ENTRYPOINT ["/usr/bin/tini", "--", "wsh", "server"]
