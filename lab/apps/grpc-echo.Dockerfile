# The kit's gRPC echo server image: appmesh-lab/grpc-echo:0.1.0
#
# Build from the repository root:
#   docker build -f lab/apps/grpc-echo.Dockerfile -t appmesh-lab/grpc-echo:0.1.0 .
# It serves lab.echo.Echo/Say and Info (JSON in, JSON out) and grpc.health.v1.Health on PORT.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=9000

WORKDIR /app
RUN pip install --no-cache-dir "grpcio>=1.60" \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin echo
COPY lab/apps/__init__.py lab/apps/grpc_echo.py /app/lab/apps/
RUN touch /app/lab/__init__.py && python -m compileall -q /app/lab

# Not 1337: in an App Mesh pod that UID belongs to the Envoy sidecar.
USER 10001
EXPOSE 9000
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "lab.apps.grpc_echo"]
