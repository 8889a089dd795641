# ksrv's operator (`ksrv k8s operator`): kopf and the official client, no model runtimes.
# `ksrv k8s install` runs it as Deployment kserve/ksrv-operator. From the repository root:
#   docker build -f deploy/docker/operator.Dockerfile -t ghcr.io/ksrv-dev/ksrv-operator:0.1.0 .
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim
ARG EXTRAS=k8s
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md /build/
COPY src /build/src
RUN pip install --no-cache-dir "/build[${EXTRAS}]" && rm -rf /build \
    && useradd --uid 1000 --create-home ksrv
USER 1000
ENTRYPOINT ["ksrv", "k8s", "operator"]
