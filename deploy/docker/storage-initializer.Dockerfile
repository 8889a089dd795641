# ksrv's storage initializer: the `storage-initializer` init container, given `URI DEST` pairs
# (`/mnt/models`) as KServe gives its own. No content cache: the container's filesystem ends
# with it, so a cache would only hold each model twice. From the repository root:
#   docker build -f deploy/docker/storage-initializer.Dockerfile \
#     -t ghcr.io/ksrv-dev/ksrv-storage-initializer:0.1.0 .
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim
ARG EXTRAS=s3,gcs,azure,hf
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md /build/
COPY src /build/src
RUN pip install --no-cache-dir "/build[${EXTRAS}]" && rm -rf /build \
    && useradd --uid 1000 --create-home ksrv
USER 1000
ENTRYPOINT ["ksrv", "storage", "download", "--no-cache"]
