"""Workloads the lab runs: the sample application and the images the manifests name.

The manifests under ``manifests/`` refer to three images. On the ``kind`` and ``eks`` targets they
are real container images; on the ``local`` target the lab recognises these names and runs the
matching local program instead (``python -m lab.apps.sample`` for the sample app,
``python -m lab.apps.grpc_echo`` for the gRPC echo server, the Envoy binary for Envoy). Any
other image needs the pod-template annotation ``LOCAL_COMMAND_ANNOTATION`` to say what to run
locally.
"""

#: The kit's sample application (``lab/apps/sample.py``), built from ``lab/apps/Dockerfile``.
SAMPLE_IMAGE = "appmesh-lab/sample-app:0.1.0"

#: The kit's gRPC echo server (``lab/apps/grpc_echo.py``): the sample app's image with the
#: entrypoint ``python -m lab.apps.grpc_echo`` (and grpcio installed).
GRPC_ECHO_IMAGE = "appmesh-lab/grpc-echo:0.1.0"

#: The Envoy image the gateway Deployments name; the kit's Envoy is 1.40 on every target.
ENVOY_IMAGE = "envoyproxy/envoy:v1.40.0"

#: Pod-template annotation naming the command the local target runs for any other image.
LOCAL_COMMAND_ANNOTATION = "lab.appmesh.dev/local-command"

__all__ = ["SAMPLE_IMAGE", "GRPC_ECHO_IMAGE", "ENVOY_IMAGE", "LOCAL_COMMAND_ANNOTATION"]
