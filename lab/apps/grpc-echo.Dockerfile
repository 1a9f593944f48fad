# The kit's gRPC echo server image: appmesh-lab/grpc-echo:0.1.0 (manifests/examples/grpc-gateway-route)
#
# Build from the repository root:
#   docker build -f lab/apps/grpc-echo.Dockerfile -t appmesh-lab/grpc-echo:0.1.0 .
# scripts/build-images.sh builds it with the other images.
# It serves lab.echo.Echo/Say and Info (JSON in, JSON out) and grpc.health.v1.Health on PORT.
#
# Two stages: grpcio is installed into a virtualenv in the first (pip and its caches stay there),
# which the second copies onto a clean slim Python with the app (grpc_echo.py and the sample.py it builds on).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv && /opt/venv/bin/pip install "grpcio>=1.60"
WORKDIR /app
COPY lab/apps/__init__.py lab/apps/sample.py lab/apps/grpc_echo.py /app/lab/apps/
RUN touch /app/lab/__init__.py && /opt/venv/bin/python -m compileall -q /app/lab

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=9000
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
# Not 1337: in an App Mesh pod that UID belongs to the Envoy sidecar.
USER 10001:10001
EXPOSE 9000
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "lab.apps.grpc_echo"]
