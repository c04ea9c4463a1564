# modeldeploy images: `--target server` (model server, no kopf) and `--target operator`
# (operator, no scikit-learn). Both run as uid 10001 with `modeldeploy` as entrypoint.
#
#   podman build --target server -t modeldeploy-server .
#
# BASE_IMAGE must provide python3 (>= 3.11) with the venv module and nothing else is assumed;
# the local cluster builds with a Debian bookworm + Python root of its own
# (`--build-arg BASE_IMAGE=localhost/debian-python:bookworm`).
ARG BASE_IMAGE=docker.io/library/python:3.11.14-slim-bookworm

# --- build stages: a virtualenv per image, dependencies in their own cached layer ---
FROM ${BASE_IMAGE} AS build-base
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
# The dependency layers depend on pyproject.toml alone (an extra's requirements, read with
# tomllib), so they survive every code change.
ENV REQUIREMENTS='import sys, tomllib; \
project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
print(*project["optional-dependencies"][sys.argv[1]], sep="\n")'

FROM build-base AS build-server
RUN python3 -c "$REQUIREMENTS" server > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt
COPY README.md ./
COPY modeldeploy/ modeldeploy/
COPY server/ server/
COPY operator/ operator/
RUN /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/pip uninstall -y pip setuptools wheel || true

FROM build-base AS build-operator
RUN python3 -c "$REQUIREMENTS" operator > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt
COPY README.md ./
COPY modeldeploy/ modeldeploy/
COPY server/ server/
COPY operator/ operator/
RUN /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/pip uninstall -y pip setuptools wheel || true

# --- runtime: the base image, a non-root user, the virtualenv; no compilers, no pip ---
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --gid 10001 modeldeploy \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin modeldeploy
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["modeldeploy"]
CMD ["--help"]

FROM runtime AS operator
COPY --from=build-operator /opt/venv /opt/venv
LABEL org.opencontainers.image.title="modeldeploy-operator" \
      org.opencontainers.image.description="modeldeploy operator: safe rollouts of scikit-learn models" \
      org.opencontainers.image.licenses="Apache-2.0"

FROM runtime AS server
COPY --from=build-server /opt/venv /opt/venv
EXPOSE 8080
LABEL org.opencontainers.image.title="modeldeploy-server" \
      org.opencontainers.image.description="modeldeploy model server: scikit-learn over HTTP with drift metrics" \
      org.opencontainers.image.licenses="Apache-2.0"
