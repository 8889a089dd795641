# ksrv's model server: the image ksrv's default ClusterServingRuntimes run (`ksrv serve`).
# One image serves the model formats of the extras it is built with; the runtimes all name it,
# so build it with every runtime your InferenceServices use. From the repository root:
#   docker build -f deploy/docker/server.Dockerfile --build-arg EXTRAS=sklearn,xgboost \
#     -t ghcr.io/ksrv-dev/ksrv-server:0.1.0 .
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim
ARG EXTRAS=sklearn
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md /build/
COPY src /build/src
RUN pip install --no-cache-dir "/build[${EXTRAS}]" && rm -rf /build \
    && useradd --uid 1000 --create-home ksrv
# numeric, so a pod's runAsNonRoot can check it
USER 1000
EXPOSE 8080 8081
ENTRYPOINT ["ksrv", "serve"]
