"""xDS layer: snapshots of Envoy resources, the ADS gRPC server and bootstraps."""

from lab.xds.bootstrap import XDS_CLUSTER_NAME, make_bootstrap
from lab.xds.errors import (
    InconsistentSnapshot,
    SnapshotError,
    SnapshotVersionError,
    XdsError,
    XdsServerError,
)
from lab.xds.server import XdsCallbacks, XdsServer
from lab.xds.snapshot import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    PROTO_MODULES,
    PUSH_ORDER,
    ROUTE_TYPE,
    SECRET_TYPE,
    SHORT_NAMES,
    Snapshot,
    register_proto_modules,
    resource_name,
)

__all__ = [
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "LISTENER_TYPE",
    "PROTO_MODULES",
    "PUSH_ORDER",
    "ROUTE_TYPE",
    "SECRET_TYPE",
    "SHORT_NAMES",
    "XDS_CLUSTER_NAME",
    "InconsistentSnapshot",
    "Snapshot",
    "SnapshotError",
    "SnapshotVersionError",
    "XdsCallbacks",
    "XdsError",
    "XdsServer",
    "XdsServerError",
    "make_bootstrap",
    "register_proto_modules",
    "resource_name",
]
