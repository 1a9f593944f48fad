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
_ROUTES = frozenset({("envoy.config.route.v3.VirtualHost", "routes")})  # scanned route by route
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
        # EDS: cluster -> ClusterLoadAssignment name it needs
        self.eds: dict[str, str] = {}
        for name, cluster in snap.clusters.items():
            if cluster.WhichOneof("cluster_discovery_type") == "type" and cluster.type == cluster.EDS:
                eds = cluster.eds_cluster_config
                if _uses_ads(eds.eds_config, eds.HasField("eds_config")):
                    self.eds[name] = eds.service_name or name

        # RDS: listener -> route config names its HCMs load over RDS.
        # Clusters: referrer -> cluster names (routes, inline route configs, tcp_proxy).
        self.rds: dict[str, set[str]] = {}
        self.route_clusters: dict[str, set[str]] = {}
        self.secrets: dict[str, set[str]] = {}
        # A resource (or a route) the previous snapshot had unchanged is not scanned again: the
        # names it references are kept with it from one snapshot to the next (see from_dicts).
        kept = snap._res_memo or {}
        routes = snap._route_memo or {}
        for kind, what, items in (("listeners", "listener", snap.listeners), ("routes", "route configuration",
                                                                            snap.routes),
                                  ("clusters", "cluster", snap.clusters)):
            for name, msg in items.items():
                holder = kept.get((kind, name))
                if holder is not None and "names" in holder:
                    names = holder["names"]
                elif kind == "routes" and routes:
                    names = tuple(set(x) for x in _names_of(msg, _ROUTES))  # the routes' names added below
                    for vh_index, vh in enumerate(msg.virtual_hosts):
                        for index, route in enumerate(vh.routes):
                            held = routes.get((name, vh_index, index))
                            if held is None or "names" not in held:
                                got = _names_of(route)
                                if held is not None:
                                    held["names"] = got
                            else:
                                got = held["names"]
                            for mine, more in zip(names, got):
                                mine |= more
                    names = tuple(_frozen(x) for x in names)
                else:
                    names = _names_of(msg)
                if holder is not None:
                    holder["names"] = names
                who = f"{what} {name!r}"
                for table, got in zip((self.rds, self.route_clusters, self.secrets), names):
                    if got:
                        table.setdefault(who, set()).update(got)


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
def _parse_route_config(item: Mapping[str, _AnyT], cache: dict, kept: dict) -> Message:
    """A RouteConfiguration dict parsed route by route: a route whose dict equals the one at the
    same key in ``cache`` (from the previous snapshot) is copied instead of parsed. Every route's
    key is added to ``kept`` with its dict and position (virtual host, route). Raises
    json_format.ParseError like ParseDict."""
    from envoy.config.route.v3 import route_pb2
    vhs_key = "virtual_hosts" if "virtual_hosts" in item else "virtualHosts"
    vhs = item.get(vhs_key)
    if not isinstance(vhs, list) or not all(isinstance(vh, Mapping) and isinstance(vh.get("routes", []), list)
                                            for vh in vhs):
        return json_format.ParseDict(item, route_pb2.RouteConfiguration())  # let the parser say what is wrong
    shell = dict(item)
    shell[vhs_key] = [{k: v for k, v in vh.items() if k != "routes"} for vh in vhs]
    config = json_format.ParseDict(shell, route_pb2.RouteConfiguration())
    for vh_index, (vh_msg, vh) in enumerate(zip(config.virtual_hosts, vhs)):
        for index, route in enumerate(vh.get("routes") or []):
            name = route.get("name") if isinstance(route, Mapping) else None
            key = ("route", config.name, vh_msg.name, name if isinstance(name, str) and name else index)
            hit = cache.get(key)
            if hit is not None and hit[0] == route:
                vh_msg.routes.add().CopyFrom(hit[1])
                holder = hit[2]
            else:
                json_format.ParseDict(route, vh_msg.routes.add())
                holder = {}
            kept[key] = (route, vh_index, index, holder)
    return config


class Snapshot:
    """An immutable set of xDS resources for one proxy, with a version.

    Build it from messages (``Snapshot("v1", clusters=[Cluster(...)])``) or
    from proto3-JSON dicts (:meth:`from_dicts`). Messages are copied on the
    way in (from_dicts with a cache takes an unchanged resource's message from
    the previous snapshot as it is: they share it); the ones handed out by the
    accessors must be treated as read-only.
    """

    __slots__ = ("_version", "_resources", "_packed", "_digest", "_refs", "_route_memo", "_res_memo",
                 "_serialized")

    def __init__(
        self,
        version: str,
        *,
        clusters: Iterable[Message] = (),
        endpoints: Iterable[Message] = (),
        listeners: Iterable[Message] = (),
        routes: Iterable[Message] = (),
        secrets: Iterable[Message] = (),
        _reuse: dict | None = None,
    ):
        # _reuse (from_dicts): id(message) -> (message, its Any, its deterministic serialization) of
        # messages another snapshot owns and made those of: taken as they are, not copied again
        if not isinstance(version, str) or not version:
            raise SnapshotError("version", None, None, "version must be a non-empty string")
        given = {
            "clusters": clusters,
            "endpoints": endpoints,
            "listeners": listeners,
            "routes": routes,
            "secrets": secrets,
        }
        resources: dict[str, Mapping[str, Message]] = {}
        packed: dict[str, Mapping[str, any_pb2.Any]] = {}
        digest = hashlib.sha256(b"xds-snapshot\0")
        serialized: dict = {}
        for kind, (type_url, cls, name_field) in _KINDS.items():
            by_name: dict[str, Message] = {}
            anys: dict[str, any_pb2.Any] = {}
            sers: dict = {}
            serialized[type_url] = sers
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
                same = _reuse.get(id(item)) if _reuse else None
                if same is not None and same[0] is item:
                    copy, wrapped, sers[name] = same
                else:
                    copy = cls()
                    copy.CopyFrom(item)
                    wrapped = any_pb2.Any()
                    wrapped.Pack(copy)
                    sers[name] = None
                by_name[name] = copy
                anys[name] = wrapped
            for name in sorted(by_name):
                if sers[name] is None:
                    sers[name] = by_name[name].SerializeToString(deterministic=True)
                digest.update(f"{type_url}\0{name}\0".encode())
                digest.update(sers[name])
            resources[type_url] = MappingProxyType(by_name)
            packed[type_url] = MappingProxyType(anys)
        self._version = version
        self._resources = MappingProxyType(resources)
        self._packed = MappingProxyType(packed)
        self._digest = digest.hexdigest()
        self._refs: _References | None = None
        # (route configuration, virtual host index, route index) -> a dict shared with the previous
        # snapshot's same route when it did not change (from_dicts): the names it references
        self._route_memo: dict | None = None
        self._res_memo: dict | None = None  # (kind, name) -> the same for a whole resource
        self._serialized: dict | None = serialized if _reuse is not None else None  # for from_dicts' cache

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
        name in the previous call is not parsed again (parsing is most of the cost
        of a large snapshot, and one change usually touches one or two resources).
        A changed route configuration is parsed route by route, reusing the
        routes that did not change (a gateway with 1,000 routes gets one new
        route per gateway route applied). The dicts are kept by reference: the
        caller must not mutate them later. Afterwards the cache holds exactly
        this snapshot's resources (and routes).
        """
        given = {
            "clusters": clusters,
            "endpoints": endpoints,
            "listeners": listeners,
            "routes": routes,
            "secrets": secrets,
        }
        parsed: dict[str, list[Message]] = {}
        kept: list = []  # (kind, name, the dict, type URL, the names it references (see _References))
        reuse: dict = {}  # id(message) -> what the snapshot takes as it is (see __init__)
        kept_routes: dict = {}  # ("route", config, virtual host, route name or index) -> (the dict, position)
        for kind, (type_url, msg_cls, name_field) in _KINDS.items():
            out: list[Message] = []
            for index, item in enumerate(given[kind]):
                name = None
                if isinstance(item, Mapping):
                    raw = item.get(name_field, item.get(_camel(name_field)))
                    name = raw if isinstance(raw, str) else None
                else:
                    raise SnapshotError(kind, index, None, f"expected a dict, got {type(item).__name__}")
                if cache is not None and name is not None:
                    hit = cache.get((kind, name))
                    if hit is not None and hit[0] == item:
                        out.append(hit[1])
                        kept.append((kind, name, item, type_url, hit[2]))
                        if "packed" in hit[2]:
                            reuse[id(hit[1])] = hit[2]["packed"]
                        continue
                try:
                    if cache is not None and kind == "routes":
                        msg = _parse_route_config(item, cache, kept_routes)
                    else:
                        msg = json_format.ParseDict(item, msg_cls())
                except json_format.ParseError as exc:
                    # Keep the field path; drop the (very long) list of valid fields.
                    detail = str(exc).split("\n Available Fields", 1)[0].strip()
                    raise SnapshotError(kind, index, name, detail) from exc
                out.append(msg)
                if cache is not None and name is not None and getattr(msg, name_field) == name:
                    kept.append((kind, name, item, type_url, {}))
            parsed[kind] = out
        snapshot = cls(version, **parsed, _reuse=reuse if cache is not None else None)
        if cache is not None:
            serialized, snapshot._serialized = snapshot._serialized, None
            for kind, name, _, type_url, holder in kept:  # taken as they are by the next snapshot
                holder["packed"] = (snapshot.resources(type_url)[name], snapshot.packed(type_url)[name],
                                    serialized[type_url][name])
            # the snapshot's own (read-only) copies: the cache costs no memory of its own
            cache.clear()
            cache.update(((kind, name), (item, snapshot.resources(type_url)[name], holder))
                         for kind, name, item, type_url, holder in kept)
            snapshot._res_memo = {(kind, name): holder for kind, name, _, _, holder in kept}
            configs = snapshot.resources(ROUTE_TYPE)
            cache.update((key, (route, configs[key[1]].virtual_hosts[vh].routes[i], holder))
                         for key, (route, vh, i, holder) in kept_routes.items())
            snapshot._route_memo = {(key[1], vh, i): holder for key, (route, vh, i, holder) in kept_routes.items()}
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
        """Resources of one type already packed into ``Any``, by name."""
        return self._packed[type_url]

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
