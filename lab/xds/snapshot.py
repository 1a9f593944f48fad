"""Immutable per-proxy configuration snapshots for the ADS server.

A :class:`Snapshot` is the whole configuration one Envoy should run: its
clusters, endpoints (ClusterLoadAssignments), listeners, route configurations
and secrets, each as an Envoy v3 protobuf message keyed by resource name,
plus a version string that is sent to Envoy as ``version_info``.

The translate layer produces resources as plain dicts in proto3 JSON form
(the same shape as Envoy's YAML/JSON config, ``typed_config`` blocks carry an
``"@type"``). :meth:`Snapshot.from_dicts` parses them with
``google.protobuf.json_format.ParseDict``; for an ``Any`` to be parsed, the
module defining its message must have been imported, which is why every
extension the translator may use is listed in :data:`PROTO_MODULES`.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any as _AnyT

from google.protobuf import any_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from lab.xds.errors import InconsistentSnapshot, SnapshotError

# --------------------------------------------------------------------------
# Type URLs (xDS v3)
# --------------------------------------------------------------------------
TYPE_PREFIX = "type.googleapis.com/"
CLUSTER_TYPE = TYPE_PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = TYPE_PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER_TYPE = TYPE_PREFIX + "envoy.config.listener.v3.Listener"
ROUTE_TYPE = TYPE_PREFIX + "envoy.config.route.v3.RouteConfiguration"
SECRET_TYPE = TYPE_PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"

#: Order in which a new snapshot is pushed: what is referenced goes before
#: what references it (clusters/endpoints before listeners/routes; secrets
#: first because clusters and listeners may reference them).
PUSH_ORDER: tuple[str, ...] = (SECRET_TYPE, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE)

#: Types Envoy subscribes to with a wildcard (it gets every resource) versus by
#: name (it gets only the resources it asked for).
WILDCARD_TYPES = frozenset({CLUSTER_TYPE, LISTENER_TYPE})
NAMED_TYPES = frozenset({ENDPOINT_TYPE, ROUTE_TYPE, SECRET_TYPE})

#: Short names, for messages and status dicts.
SHORT_NAMES: Mapping[str, str] = MappingProxyType(
    {
        CLUSTER_TYPE: "cds",
        ENDPOINT_TYPE: "eds",
        LISTENER_TYPE: "lds",
        ROUTE_TYPE: "rds",
        SECRET_TYPE: "sds",
    }
)

# --------------------------------------------------------------------------
# Protobuf modules: importing them registers their messages in the default
# descriptor pool, so that "@type" in typed_config (an Any) can be resolved
# by ParseDict and unpacked by the consistency checks. Keep this list the one
# place where extensions are registered; add here what the translator emits.
# --------------------------------------------------------------------------
PROTO_MODULES: tuple[str, ...] = (
    # Resource types
    "envoy.config.cluster.v3.cluster_pb2",
    "envoy.config.endpoint.v3.endpoint_pb2",
    "envoy.config.listener.v3.listener_pb2",
    "envoy.config.route.v3.route_pb2",
    "envoy.extensions.transport_sockets.tls.v3.secret_pb2",
    # Network filters
    "envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2",
    "envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2",
    "envoy.extensions.filters.network.direct_response.v3.config_pb2",
    # HTTP filters
    "envoy.extensions.filters.http.dynamic_forward_proxy.v3.dynamic_forward_proxy_pb2",
    "envoy.extensions.clusters.dynamic_forward_proxy.v3.cluster_pb2",
    "envoy.extensions.filters.http.router.v3.router_pb2",
    "envoy.extensions.filters.http.health_check.v3.health_check_pb2",
    "envoy.extensions.filters.http.grpc_web.v3.grpc_web_pb2",
    "envoy.extensions.filters.http.grpc_stats.v3.config_pb2",
    "envoy.extensions.filters.http.cors.v3.cors_pb2",
    "envoy.extensions.filters.http.fault.v3.fault_pb2",
    "envoy.extensions.filters.http.local_ratelimit.v3.local_rate_limit_pb2",
    "envoy.extensions.filters.http.header_mutation.v3.header_mutation_pb2",
    "envoy.extensions.filters.http.rbac.v3.rbac_pb2",
    "envoy.extensions.filters.http.lua.v3.lua_pb2",
    "envoy.extensions.filters.http.compressor.v3.compressor_pb2",
    "envoy.extensions.filters.http.dynamic_forward_proxy.v3.dynamic_forward_proxy_pb2",
    "envoy.extensions.compression.gzip.compressor.v3.gzip_pb2",
    # Listener filters
    "envoy.extensions.filters.listener.original_dst.v3.original_dst_pb2",
    "envoy.extensions.filters.listener.tls_inspector.v3.tls_inspector_pb2",
    "envoy.extensions.filters.listener.http_inspector.v3.http_inspector_pb2",
    # Transport sockets
    "envoy.extensions.transport_sockets.tls.v3.tls_pb2",
    "envoy.extensions.transport_sockets.raw_buffer.v3.raw_buffer_pb2",
    "envoy.extensions.transport_sockets.internal_upstream.v3.internal_upstream_pb2",
    "envoy.extensions.bootstrap.internal_listener.v3.internal_listener_pb2",
    # Access loggers
    "envoy.extensions.access_loggers.file.v3.file_pb2",
    "envoy.extensions.access_loggers.stream.v3.stream_pb2",
    # Cluster extensions (cluster_type) and their shared config
    "envoy.extensions.clusters.dynamic_forward_proxy.v3.cluster_pb2",
    "envoy.extensions.common.dynamic_forward_proxy.v3.dns_cache_pb2",
    # Upstream protocol options (typed_extension_protocol_options)
    "envoy.extensions.upstreams.http.v3.http_protocol_options_pb2",
    "envoy.extensions.upstreams.tcp.v3.tcp_protocol_options_pb2",
    # Load balancing policies, retries, path rewrite/match, request id
    "envoy.extensions.load_balancing_policies.round_robin.v3.round_robin_pb2",
    "envoy.extensions.load_balancing_policies.least_request.v3.least_request_pb2",
    "envoy.extensions.load_balancing_policies.random.v3.random_pb2",
    "envoy.extensions.load_balancing_policies.ring_hash.v3.ring_hash_pb2",
    "envoy.extensions.load_balancing_policies.maglev.v3.maglev_pb2",
    "envoy.extensions.retry.host.previous_hosts.v3.previous_hosts_pb2",
    "envoy.extensions.path.rewrite.uri_template.v3.uri_template_rewrite_pb2",
    "envoy.extensions.path.match.uri_template.v3.uri_template_match_pb2",
    "envoy.extensions.request_id.uuid.v3.uuid_pb2",
)

_MODULES = {name: importlib.import_module(name) for name in PROTO_MODULES}


def register_proto_modules(*module_names: str) -> None:
    """Import extra ``*_pb2`` modules so their types resolve inside ``Any``."""
    for name in module_names:
        if name not in _MODULES:
            _MODULES[name] = importlib.import_module(name)


_cluster_pb2 = _MODULES["envoy.config.cluster.v3.cluster_pb2"]
_endpoint_pb2 = _MODULES["envoy.config.endpoint.v3.endpoint_pb2"]
_listener_pb2 = _MODULES["envoy.config.listener.v3.listener_pb2"]
_route_pb2 = _MODULES["envoy.config.route.v3.route_pb2"]
_secret_pb2 = _MODULES["envoy.extensions.transport_sockets.tls.v3.secret_pb2"]

#: kind (keyword of from_dicts) -> (type url, message class, name field)
_KINDS: Mapping[str, tuple[str, type[Message], str]] = MappingProxyType(
    {
        "clusters": (CLUSTER_TYPE, _cluster_pb2.Cluster, "name"),
        "endpoints": (ENDPOINT_TYPE, _endpoint_pb2.ClusterLoadAssignment, "cluster_name"),
        "listeners": (LISTENER_TYPE, _listener_pb2.Listener, "name"),
        "routes": (ROUTE_TYPE, _route_pb2.RouteConfiguration, "name"),
        "secrets": (SECRET_TYPE, _secret_pb2.Secret, "name"),
    }
)
_KIND_OF_TYPE = {type_url: kind for kind, (type_url, _, _) in _KINDS.items()}

# Full names of the messages the consistency checks look for anywhere inside
# resources (including inside typed_config Anys).
_HCM = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTE_ACTION = "envoy.config.route.v3.RouteAction"
_TCP_PROXY = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
_SDS_SECRET_CONFIG = "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig"
_ROUTE_CONFIGURATION = "envoy.config.route.v3.RouteConfiguration"


def resource_name(message: Message) -> str:
    """Name of a resource as used by xDS (ClusterLoadAssignment: cluster_name)."""
    for _, cls, field in _KINDS.values():
        if isinstance(message, cls):
            return getattr(message, field)
    raise TypeError(f"not an xDS resource message: {type(message).__name__}")


# --------------------------------------------------------------------------
# Walking messages, including inside Any
# --------------------------------------------------------------------------
def _unpack_any(value: any_pb2.Any) -> Message | None:
    """Unpack an Any whose type is registered; None when it is unknown."""
    try:
        desc = descriptor_pool.Default().FindMessageTypeByName(value.TypeName())
    except KeyError:
        return None
    inner = message_factory.GetMessageClass(desc)()
    if not value.Unpack(inner):
        return None
    return inner


def iter_messages(root: Message, skip: frozenset = frozenset()) -> Iterator[Message]:
    """Yield ``root`` and every message nested in it (Anys are unpacked). ``skip``: (message
    type's full name, field name) pairs whose messages are not visited."""
    stack: list[Message] = [root]
    while stack:
        msg = stack.pop()
        yield msg
        if msg.DESCRIPTOR.full_name == "google.protobuf.Any":
            inner = _unpack_any(msg)  # type: ignore[arg-type]
            if inner is not None:
                stack.append(inner)
            continue
        for field, value in msg.ListFields():
            mtype = field.message_type
            if mtype is None or skip and (msg.DESCRIPTOR.full_name, field.name) in skip:
                continue
            if mtype.GetOptions().map_entry:
                if mtype.fields_by_name["value"].message_type is not None:
                    stack.extend(value.values())
            elif field.is_repeated:
                stack.extend(value)
            else:
                stack.append(value)


def _uses_ads(config_source: Message, has_field: bool) -> bool:
    """True when a ConfigSource is ADS or absent (checked, to be safe).

    A source pointing elsewhere (a file path, REST) is not served by us, so the
    names it loads are not required to be in the snapshot.
    """
    if not has_field:
        return True
    return config_source.WhichOneof("config_source_specifier") in (None, "ads")


class _References:
    """Names one snapshot references, gathered once (snapshots are immutable)."""

    def __init__(self, snap: Snapshot):
        # A resource the previous snapshot had unchanged is not scanned again: what it references
        # is kept with it from one snapshot to the next (see from_dicts); a route configuration
        # from_dicts assembled route by route holds its names already.
        kept = snap._res_memo or {}
        # EDS: cluster -> ClusterLoadAssignment name it needs
        self.eds: dict[str, str] = {}
        clusters = snap.clusters  # a message is parsed only for a name not kept (_Messages)
        for name in clusters:
            holder = kept.get(("clusters", name))
            if holder is not None and "eds" in holder:
                eds_name = holder["eds"]
            else:
                msg = clusters[name]
                eds_name = _eds_of(name, msg)
                if holder is not None:
                    holder["eds"] = eds_name
                    if "names" not in holder:  # for the loop below, without parsing it again
                        holder["names"] = _names_of(msg)
            if eds_name is not None:
                self.eds[name] = eds_name

        # RDS: listener -> route config names its HCMs load over RDS.
        # Clusters: referrer -> cluster names (routes, inline route configs, tcp_proxy).
        self.rds: dict[str, set[str]] = {}
        self.route_clusters: dict[str, set[str]] = {}
        self.secrets: dict[str, set[str]] = {}
        for kind, what, items in (("listeners", "listener", snap.listeners), ("routes", "route configuration",
                                                                            snap.routes),
                                  ("clusters", "cluster", snap.clusters)):
            for name in items:
                holder = kept.get((kind, name))
                if holder is not None and "names" in holder:
                    names = holder["names"]
                else:
                    names = _names_of(items[name])
                    if holder is not None:
                        holder["names"] = names
                if names[0] or names[1] or names[2]:
                    who = f"{what} {name!r}"
                    for table, got in zip((self.rds, self.route_clusters, self.secrets), names):
                        if got:
                            table.setdefault(who, set()).update(got)


def _eds_of(name: str, cluster: Message) -> str | None:
    """The ClusterLoadAssignment an EDS cluster served over ADS needs (None: it needs none)."""
    if cluster.WhichOneof("cluster_discovery_type") == "type" and cluster.type == cluster.EDS:
        eds = cluster.eds_cluster_config
        if _uses_ads(eds.eds_config, eds.HasField("eds_config")):
            return eds.service_name or name
    return None


def _names_of(root: Message, skip: frozenset = frozenset()) -> tuple:
    """(RDS route configuration names, cluster names, SDS secret names) one message references."""
    rds: set = set()
    clusters: set = set()
    secrets: set = set()
    for msg in iter_messages(root, skip):
        full = msg.DESCRIPTOR.full_name
        if full == _HCM:
            if msg.WhichOneof("route_specifier") == "rds" and _uses_ads(
                msg.rds.config_source, msg.rds.HasField("config_source")
            ):
                rds.add(msg.rds.route_config_name)
        elif full == _ROUTE_ACTION:
            clusters.add(msg.cluster)
            for weighted in msg.weighted_clusters.clusters:
                clusters.add(weighted.name)
            for mirror in msg.request_mirror_policies:
                clusters.add(mirror.cluster)
        elif full == _TCP_PROXY:
            if msg.WhichOneof("cluster_specifier") == "cluster":
                clusters.add(msg.cluster)
            for weighted in msg.weighted_clusters.clusters:
                clusters.add(weighted.name)
        elif full == _SDS_SECRET_CONFIG:
            if msg.HasField("sds_config") and msg.sds_config.WhichOneof("config_source_specifier") == "ads":
                secrets.add(msg.name)
    return _frozen(rds), _frozen(clusters), _frozen(secrets)


_NONE: frozenset = frozenset()


def _frozen(names: set) -> frozenset:
    """The names without the empty one, read-only: kept with every resource and route of a snapshot
    (lab/xds/snapshot.py from_dicts), where most are empty, so all the empty ones are one object."""
    names.discard("")
    return frozenset(names) if names else _NONE



# --------------------------------------------------------------------------
# Snapshot
# --------------------------------------------------------------------------
# Protobuf's encoding of a message is its fields' encodings in field-number order (deterministic
# serialization), and a repeated message field's is its elements', each as a length-delimited
# field, one after the other. So a RouteConfiguration's bytes can be put together from the bytes of
# its routes: name (field 1), each virtual host (field 2: its name 1, domains 2, each route 3, the
# rest), then the rest of the configuration (every other field has a higher number).
_VIRTUAL_HOST_TAG = b"\x12"  # RouteConfiguration.virtual_hosts: field 2, length-delimited
_ROUTE_TAG = b"\x1a"  # VirtualHost.routes: field 3, length-delimited


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, body: bytes) -> bytes:
    """The encoding of a length-delimited field: tag, length, bytes."""
    return tag + _varint(len(body)) + body


def _det(message: Message) -> bytes:
    return message.SerializeToString(deterministic=True)


def _route_config(item: Mapping[str, _AnyT], cache: dict, kept: dict) -> tuple[Message, bytes, tuple]:
    """A RouteConfiguration dict made route by route: (its message, its deterministic serialization,
    the names it references (see _names_of)). A route whose dict equals the one at the same key in
    ``cache`` (from the previous snapshot) is not parsed again: its encoding and names are taken as
    they were, and the configuration's bytes are assembled from its routes' (see above). Every
    route's key is added to ``kept``. Raises json_format.ParseError like ParseDict."""
    from envoy.config.route.v3 import route_components_pb2 as parts_pb2
    from envoy.config.route.v3 import route_pb2
    vhs_key = "virtual_hosts" if "virtual_hosts" in item else "virtualHosts"
    vhs = item.get(vhs_key)
    if not isinstance(vhs, list) or not all(isinstance(vh, Mapping) and isinstance(vh.get("routes", []), list)
                                            for vh in vhs):
        config = json_format.ParseDict(item, route_pb2.RouteConfiguration())  # let the parser say what is wrong
        return config, _det(config), _names_of(config)
    shell = dict(item)
    shell[vhs_key] = [{k: v for k, v in vh.items() if k != "routes"} for vh in vhs]
    config = json_format.ParseDict(shell, route_pb2.RouteConfiguration())
    names = [set(x) for x in _names_of(config)]
    rest = route_pb2.RouteConfiguration()
    rest.CopyFrom(config)
    rest.ClearField("name")
    rest.ClearField("virtual_hosts")
    parts = [_det(route_pb2.RouteConfiguration(name=config.name))]
    holders: list = []
    for vh_msg, vh in zip(config.virtual_hosts, vhs):
        vh_parts = [_det(parts_pb2.VirtualHost(name=vh_msg.name, domains=vh_msg.domains))]
        tail = parts_pb2.VirtualHost()
        tail.CopyFrom(vh_msg)
        tail.ClearField("name")
        tail.ClearField("domains")
        config_name, vh_name = config.name, vh_msg.name
        for index, route in enumerate(vh.get("routes") or []):
            name = route.get("name") if type(route) is dict or isinstance(route, Mapping) else None
            key = ("route", config_name, vh_name, name if isinstance(name, str) and name else index)
            hit = cache.get(key)
            if hit is not None and (hit[0] is route or hit[0] == route):
                holder = hit[2]
            else:
                msg = json_format.ParseDict(route, parts_pb2.Route())
                holder = {"framed": _field(_ROUTE_TAG, _det(msg)), "names": _names_of(msg)}
            vh_parts.append(holder["framed"])
            holders.append(holder)
            kept[key] = (route, None, holder)
        vh_parts.append(_det(tail))
        parts.append(_field(_VIRTUAL_HOST_TAG, b"".join(vh_parts)))
    parts.append(_det(rest))
    serialized = b"".join(parts)
    for i, mine in enumerate(names):
        mine.update(*[h["names"][i] for h in holders])
    return route_pb2.RouteConfiguration.FromString(serialized), serialized, tuple(_frozen(x) for x in names)


class _Made(Mapping):
    """A snapshot's resources of one type, by name, each made from its deterministic serialization
    when it is asked for (see _Messages and _Packed). Read-only."""

    __slots__ = ("_of", "_serialized")

    def __init__(self, of, serialized: dict):
        self._of, self._serialized = of, serialized

    def __contains__(self, name) -> bool:
        return name in self._serialized

    def __iter__(self) -> Iterator[str]:
        return iter(self._serialized)

    def __len__(self) -> int:
        return len(self._serialized)


class _Messages(_Made):
    """The resources as messages (`of`: their class), each parsed from its bytes when asked for. A
    parsed message takes about ten times the memory of its bytes (the 5,000 clusters and assignments
    of a 5,000-route gateway: 31 MB against 3 MB), and a snapshot is served from the bytes; the
    messages are read only by the reference scan (for the resources whose names it has not kept)
    and by callers. Each access parses anew: two give equal messages, not the same object."""

    __slots__ = ()

    def __getitem__(self, name: str) -> Message:
        return self._of.FromString(self._serialized[name])


class _Packed(_Made):
    """The resources packed in an ``Any`` (`of`: their type URL), each made when asked for (an Any
    holds a copy of the bytes: kept for every resource, the Anys of a 5,000-route gateway took
    10 MB). Two accesses give equal Anys, not the same object."""

    __slots__ = ()

    def __getitem__(self, name: str) -> any_pb2.Any:
        return any_pb2.Any(type_url=self._of, value=self._serialized[name])


_CLASS_OF = {type_url: cls for type_url, cls, _ in _KINDS.values()}


def _fill(snap: Snapshot, version: str, entries: dict) -> None:
    """Set a snapshot's fields from ``entries``: type url -> {name: (message or None, its Any, its
    deterministic serialization)}, every type of _KINDS. The snapshot keeps the Any and the bytes;
    its messages are parsed from the bytes when asked for (_Messages)."""
    if not isinstance(version, str) or not version:
        raise SnapshotError("version", None, None, "version must be a non-empty string")
    resources: dict[str, Mapping[str, Message]] = {}
    packed: dict[str, Mapping[str, any_pb2.Any]] = {}
    digest = hashlib.sha256(b"xds-snapshot\0")
    for type_url, by_name in entries.items():
        serialized = {name: e[2] for name, e in by_name.items()}
        resources[type_url] = _Messages(_CLASS_OF[type_url], serialized)
        packed[type_url] = _Packed(type_url, serialized)
        digest.update(b"".join([b for name in sorted(by_name)
                                for b in (f"{type_url}\0{name}\0".encode(), by_name[name][2])]))
    snap._version = version
    snap._resources = MappingProxyType(resources)
    snap._packed = MappingProxyType(packed)
    snap._digest = digest.hexdigest()
    snap._refs = None
    snap._res_memo = None


class Snapshot:
    """An immutable set of xDS resources for one proxy, with a version.

    Build it from messages (``Snapshot("v1", clusters=[Cluster(...)])``) or
    from proto3-JSON dicts (:meth:`from_dicts`). Messages are copied on the
    way in (from_dicts with a cache takes an unchanged resource's serialization
    from the previous snapshot as it is: they share it). A snapshot keeps each
    resource's deterministic serialization only (the bytes the digest covers);
    the messages and the ``Any`` they are served packed in are made from those
    bytes when an accessor is asked for them.
    """

    __slots__ = ("_version", "_resources", "_packed", "_digest", "_refs", "_res_memo")

    def __init__(
        self,
        version: str,
        *,
        clusters: Iterable[Message] = (),
        endpoints: Iterable[Message] = (),
        listeners: Iterable[Message] = (),
        routes: Iterable[Message] = (),
        secrets: Iterable[Message] = (),
    ):
        if not isinstance(version, str) or not version:
            raise SnapshotError("version", None, None, "version must be a non-empty string")
        given = {
            "clusters": clusters,
            "endpoints": endpoints,
            "listeners": listeners,
            "routes": routes,
            "secrets": secrets,
        }
        entries: dict = {}
        for kind, (type_url, cls, name_field) in _KINDS.items():
            by_name: dict = {}
            for index, item in enumerate(given[kind]):
                if not isinstance(item, cls):
                    raise SnapshotError(
                        kind, index, None,
                        f"expected {cls.DESCRIPTOR.full_name}, got {type(item).__name__}",
                    )
                name = getattr(item, name_field)
                if not name:
                    raise SnapshotError(kind, index, None, f"field {name_field!r} is empty")
                if name in by_name:
                    raise SnapshotError(kind, index, name, "duplicate resource name")
                copy = cls()
                copy.CopyFrom(item)
                serialized = _det(copy)
                by_name[name] = (None, None, serialized)
            entries[type_url] = by_name
        _fill(self, version, entries)

    # -- construction from translator output --------------------------------
    @classmethod
    def from_dicts(
        cls,
        version: str,
        clusters: Iterable[Mapping[str, _AnyT]] = (),
        endpoints: Iterable[Mapping[str, _AnyT]] = (),
        listeners: Iterable[Mapping[str, _AnyT]] = (),
        routes: Iterable[Mapping[str, _AnyT]] = (),
        secrets: Iterable[Mapping[str, _AnyT]] = (),
        *,
        cache: dict | None = None,
    ) -> Snapshot:
        """Parse proto3-JSON dicts (snake_case or camelCase keys) into a snapshot.

        Raises :class:`SnapshotError` naming the resource (kind, index, name)
        and carrying the parser's message, which names the offending field.

        ``cache``: a dict owned by the caller, kept from one call to the next for
        the same proxy. A resource whose dict equals the one of the same kind and
        name in the previous call is not parsed again: its message, its Any and
        its serialization are taken as they were (parsing is most of the cost of
        a large snapshot, and one change usually touches one or two resources).
        A changed route configuration is made route by route, reusing the routes
        that did not change, and its bytes are assembled from theirs (a gateway
        with 1,000 routes gets one new route per gateway route applied). The
        dicts are kept by reference: the caller must not mutate them later.
        Afterwards the cache holds exactly this snapshot's resources (and routes);
        a call that raises leaves it as it was.
        """
        if cache is None:
            return cls(version, **_parse_all(clusters=clusters, endpoints=endpoints, listeners=listeners,
                                             routes=routes, secrets=secrets))
        given = {
            "clusters": clusters,
            "endpoints": endpoints,
            "listeners": listeners,
            "routes": routes,
            "secrets": secrets,
        }
        new: dict = {}  # (kind, name) -> (the dict, its message, holder), the next call's cache
        new_routes: dict = {}  # ("route", configuration, virtual host, route name or index) -> the same
        entries: dict = {}
        for kind, (type_url, msg_cls, name_field) in _KINDS.items():
            camel = _camel(name_field)
            by_name: dict = {}
            for index, item in enumerate(given[kind]):
                if type(item) is not dict and not isinstance(item, Mapping):
                    raise SnapshotError(kind, index, None, f"expected a dict, got {type(item).__name__}")
                name = item.get(name_field)
                if name is None:
                    name = item.get(camel)
                key = (kind, name)
                hit = cache.get(key) if isinstance(name, str) else None
                if hit is not None and (hit[0] is item or hit[0] == item):
                    holder = hit[2]
                else:
                    try:
                        if kind == "routes":
                            msg, serialized, names = _route_config(item, cache, new_routes)
                            holder = {"names": names}
                        else:
                            msg = json_format.ParseDict(item, msg_cls())
                            serialized, holder = _det(msg), {}
                    except json_format.ParseError as exc:
                        raise SnapshotError(kind, index, name if isinstance(name, str) else None,
                                            _parse_detail(exc)) from exc
                    name = getattr(msg, name_field)
                    if not name:
                        raise SnapshotError(kind, index, None, f"field {name_field!r} is empty")
                    # neither the message nor its Any is kept: the snapshot makes them from the bytes when
                    # asked (_Messages, _Packed)
                    holder["packed"] = (None, None, serialized)
                    hit, key = (item, None, holder), (kind, name)
                if name in by_name:
                    raise SnapshotError(kind, index, name, "duplicate resource name")
                by_name[name] = holder["packed"]
                new[key] = hit
            entries[type_url] = by_name
        snapshot = cls.__new__(cls)
        _fill(snapshot, version, entries)
        snapshot._res_memo = {key: entry[2] for key, entry in new.items()}
        cache.clear()
        cache.update(new)
        cache.update(new_routes)
        return snapshot

    def to_dicts(self) -> dict[str, list[dict[str, _AnyT]]]:
        """The resources back as proto3-JSON dicts (snake_case), per kind."""
        return {
            kind: [
                json_format.MessageToDict(msg, preserving_proto_field_name=True)
                for msg in self._resources[type_url].values()
            ]
            for kind, (type_url, _, _) in _KINDS.items()
        }

    # -- accessors -----------------------------------------------------------
    @property
    def version(self) -> str:
        return self._version

    @property
    def digest(self) -> str:
        """SHA-256 over every resource's deterministic serialization (not the version)."""
        return self._digest

    def resources(self, type_url: str) -> Mapping[str, Message]:
        """Resources of one type, by name (read-only mapping)."""
        try:
            return self._resources[type_url]
        except KeyError:
            raise KeyError(f"unknown xDS type url {type_url!r}") from None

    def packed(self, type_url: str) -> Mapping[str, any_pb2.Any]:
        """Resources of one type packed into ``Any``, by name (each made when asked for)."""
        return self._packed[type_url]

    def serialized(self, type_url: str) -> Mapping[str, bytes]:
        """Resources of one type as their deterministic serializations, by name (what an Any of
        packed() holds as its value)."""
        return MappingProxyType(self._packed[type_url]._serialized)

    def type_urls(self) -> tuple[str, ...]:
        """Type URLs that have at least one resource, in push order."""
        return tuple(t for t in PUSH_ORDER if self._resources[t])

    @property
    def clusters(self) -> Mapping[str, Message]:
        return self._resources[CLUSTER_TYPE]

    @property
    def endpoints(self) -> Mapping[str, Message]:
        return self._resources[ENDPOINT_TYPE]

    @property
    def listeners(self) -> Mapping[str, Message]:
        return self._resources[LISTENER_TYPE]

    @property
    def routes(self) -> Mapping[str, Message]:
        return self._resources[ROUTE_TYPE]

    @property
    def secrets(self) -> Mapping[str, Message]:
        return self._resources[SECRET_TYPE]

    def same_content(self, other: Snapshot) -> bool:
        return self._digest == other._digest

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Snapshot):
            return NotImplemented
        return self._version == other._version and self._digest == other._digest

    def __hash__(self) -> int:
        return hash((self._version, self._digest))

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{kind}={len(self._resources[type_url])}" for kind, (type_url, _, _) in _KINDS.items()
        )
        return f"Snapshot(version={self._version!r}, {counts})"

    # -- references and consistency -----------------------------------------
    def _references(self) -> _References:
        if self._refs is None:
            self._refs = _References(self)
        return self._refs

    def expected_types(self) -> tuple[str, ...]:
        """Type URLs a proxy running this snapshot will subscribe to and ACK.

        CDS/LDS when the snapshot has clusters/listeners; EDS only when some
        cluster is an EDS cluster; RDS only when some HCM uses RDS; SDS only
        when an SdsSecretConfig over ADS is referenced. (Envoy never asks for
        named resources nothing references, so waiting for those would hang.)
        """
        refs = self._references()
        wanted = {
            CLUSTER_TYPE: bool(self.clusters),
            LISTENER_TYPE: bool(self.listeners),
            ENDPOINT_TYPE: bool(refs.eds),
            ROUTE_TYPE: bool(refs.rds),
            SECRET_TYPE: bool(refs.secrets),
        }
        return tuple(t for t in PUSH_ORDER if wanted[t])

    def consistency_problems(self) -> tuple[list[str], dict[str, list[str]]]:
        """(problem lines, missing names per type url); both empty when consistent."""
        refs = self._references()
        problems: list[str] = []
        missing: dict[str, set[str]] = {}

        # Rule 1: every EDS cluster has a ClusterLoadAssignment.
        for cluster, service in sorted(refs.eds.items()):
            if service not in self.endpoints:
                problems.append(
                    f"EDS cluster {cluster!r} needs ClusterLoadAssignment {service!r}, which is missing"
                )
                missing.setdefault(ENDPOINT_TYPE, set()).add(service)
        # Rule 2: every RDS route_config_name used by a listener exists.
        for who, names in sorted(refs.rds.items()):
            for name in sorted(names - set(self.routes)):
                problems.append(f"{who} uses RDS route configuration {name!r}, which is missing")
                missing.setdefault(ROUTE_TYPE, set()).add(name)
        # Rule 3: every cluster referenced by a route (or tcp_proxy) exists.
        for who, names in sorted(refs.route_clusters.items()):
            for name in sorted(names - set(self.clusters)):
                problems.append(f"{who} references cluster {name!r}, which is missing")
                missing.setdefault(CLUSTER_TYPE, set()).add(name)
        # Rule 4: every secret referenced over ADS (SDS) exists.
        for who, names in sorted(refs.secrets.items()):
            for name in sorted(names - set(self.secrets)):
                problems.append(f"{who} references SDS secret {name!r}, which is missing")
                missing.setdefault(SECRET_TYPE, set()).add(name)
        return problems, {k: sorted(v) for k, v in missing.items()}

    def consistent(self) -> Snapshot:
        """Raise :class:`InconsistentSnapshot` listing every missing name; else return self."""
        problems, missing = self.consistency_problems()
        if problems:
            raise InconsistentSnapshot(self._version, problems, missing)
        return self


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def _parse_detail(exc: json_format.ParseError) -> str:
    """The parser's message: the field path, without the (very long) list of valid fields."""
    return str(exc).split("\n Available Fields", 1)[0].strip()


def _parse_all(**given: Iterable[Mapping[str, _AnyT]]) -> dict[str, list[Message]]:
    """Every dict parsed into its message, per kind (SnapshotError on the first that fails)."""
    parsed: dict[str, list[Message]] = {}
    for kind, (_, msg_cls, name_field) in _KINDS.items():
        out: list[Message] = []
        for index, item in enumerate(given[kind]):
            if not isinstance(item, Mapping):
                raise SnapshotError(kind, index, None, f"expected a dict, got {type(item).__name__}")
            try:
                out.append(json_format.ParseDict(item, msg_cls()))
            except json_format.ParseError as exc:
                raw = item.get(name_field, item.get(_camel(name_field)))
                raise SnapshotError(kind, index, raw if isinstance(raw, str) else None, _parse_detail(exc)) from exc
        parsed[kind] = out
    return parsed
