"""Aggregated Discovery Service (xDS v3, state of the world) on grpcio.

One :class:`XdsServer` serves many proxies; each proxy is identified by the
``node.id`` of the first DiscoveryRequest on its stream and gets the snapshot
set for that id with :meth:`XdsServer.set_snapshot`.

Protocol rules implemented here (per stream, per type URL):

* A request with an empty ``response_nonce`` is a (re)subscription: it is
  always answered with the current snapshot, so a proxy reconnecting to a new
  server gets the current configuration even if it already runs it.
* A request whose ``response_nonce`` is the nonce of the latest response is
  an ACK (no ``error_detail``) or a NACK (``error_detail`` set). A NACK is
  recorded and the rejected version is *not* sent again on that stream; the
  proxy keeps its last good config. The next snapshot is sent normally.
* A request with an older nonce is stale (it crossed a response in flight)
  and is ignored, except that a NACK in it is still recorded.
* Every request's ``version_info`` is the version of that type the client
  runs; status reports it as ``acked_version``.
* CDS and LDS are wildcard: every resource is sent. EDS, RDS and SDS are by
  name: only the resources the proxy asked for are sent, and a change in the
  names it asks for gets a new response.
* Pushes follow :data:`~lab.xds.snapshot.PUSH_ORDER` (SDS, CDS, EDS, LDS,
  RDS). LDS is held back while an SDS/CDS/EDS response is awaiting its
  ACK/NACK, and RDS also while an LDS response is, so that clusters exist
  before listeners and routes use them. A client that never answers cannot
  block a stream for longer than ``ordering_timeout`` seconds.
* Only what changed is pushed: when a new snapshot leaves a type's resources
  (the ones this stream is sent) byte-identical to what the proxy ACKed on this
  stream, that type is not sent again; it counts as ACKed at the new version
  at once (the proxy runs exactly that content), so status and
  :meth:`XdsServer.wait_for_ack` read the same as after a push. A
  (re)subscription, a change of names or a NACKed type is always answered.
* If the proxy NACKs a version's SDS/CDS/EDS (or LDS, for RDS), the
  dependent types of *that version* are not sent at all on the stream: the
  proxy keeps its whole last good configuration until the next snapshot.

Delta (incremental) xDS is not served, on a measurement (the gateway of `bench scale`'s
manifests, Envoy 1.40, this 2-core machine under load): for a one-route change the server already
sends only the changed type, RDS, and a route configuration is one resource in delta xDS too, so
delta would send the same route table. What it would save: at 5,000 routes the gateway has two
route configurations (its ingress and its second, internal stage; 2,217 KB in all) and a route to an
existing service changes one (1,020 KB); and when a change adds a cluster (a new virtual node and
service), state of the world sends all 5,002 clusters (643 KB) where delta sends one. The first
needs no delta: in state of the world only listener and cluster responses must carry every
resource; a route configuration or endpoint response may carry just the changed ones (Envoy's xDS
protocol, "Grouping Resources into Responses"), which this server does not do yet. The gateway
Envoy's push -> ACK of a one-route change at 5,000 routes (bench converge's push_floor): 1.55 s at
p50 with only the changed types pushed, 2.17 s with every type; at 1,000 routes 0.22 s and 0.36 s.

ACK/NACK state is kept per stream. A node may have more than one stream open (an Envoy
replacing another, a probe opened with its node id); status and :meth:`XdsServer.wait_for_ack`
read the stream that last answered one of its latest responses (before any has: the newest), so a
stream that subscribes and never answers cannot hide what the proxy's Envoy ACKed. A closed
stream's state goes with it; the last one's stays the node's status while none is open.

Each stream uses one worker thread of the gRPC pool (the response generator)
and one reader thread of its own. All state is guarded by one lock.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from lab.xds.errors import SnapshotVersionError, XdsServerError
from lab.xds.snapshot import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    PUSH_ORDER,
    ROUTE_TYPE,
    SECRET_TYPE,
    SHORT_NAMES,
    WILDCARD_TYPES,
    Snapshot,
)

log = logging.getLogger(__name__)

#: A type is held back while any of these types has a response awaiting ACK.
_GATES: dict[str, frozenset[str]] = {
    SECRET_TYPE: frozenset(),
    CLUSTER_TYPE: frozenset(),
    ENDPOINT_TYPE: frozenset(),
    LISTENER_TYPE: frozenset({SECRET_TYPE, CLUSTER_TYPE, ENDPOINT_TYPE}),
    ROUTE_TYPE: frozenset({SECRET_TYPE, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE}),
}

_PARENT = {ENDPOINT_TYPE: CLUSTER_TYPE, ROUTE_TYPE: LISTENER_TYPE}
_NONCES_KEPT = 16  # per stream per type, to attribute late NACKs to a version
_TYPE_BY_SHORT = {short: type_url for type_url, short in SHORT_NAMES.items()}
_HISTORY_KEPT = 1024  # per node: versions remembered to refuse reuse for other content


class XdsCallbacks(Protocol):
    """Observer protocol. Every method is optional; implement the ones you need.

    Callbacks run on server threads, outside the server's lock; they must be
    quick and must not block. An exception in a callback is logged and ignored
    (it must not break the stream).
    """

    def on_stream_open(self, node_id: str) -> None: ...
    def on_request(self, node_id: str, type_url: str, request: discovery_pb2.DiscoveryRequest) -> None: ...
    def on_response(self, node_id: str, type_url: str, response: discovery_pb2.DiscoveryResponse) -> None: ...
    def on_ack(self, node_id: str, type_url: str, version: str) -> None: ...
    def on_nack(self, node_id: str, type_url: str, version: str, message: str) -> None: ...
    def on_stream_closed(self, node_id: str) -> None: ...


# --------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------
@dataclass
class _TypeStatus:
    """Per node, per type: what the proxy was last sent, ACKed and rejected."""

    acked_version: str | None = None
    last_sent_version: str | None = None
    nack: dict[str, Any] | None = None

    def as_dict(self, type_url: str) -> dict[str, Any]:
        return {
            "type_url": type_url,
            "acked_version": self.acked_version,
            "last_sent_version": self.last_sent_version,
            "nack": dict(self.nack) if self.nack else None,
        }


@dataclass
class _Node:
    node_id: str
    snapshot: Snapshot | None = None
    generation: int = 0  # bumped on every accepted set_snapshot
    history: OrderedDict[str, str] = field(default_factory=OrderedDict)  # version -> content digest
    streams: set[_Stream] = field(default_factory=set)
    # what the proxy reported on the stream it was last on, once no stream of it is open
    types: dict[str, _TypeStatus] = field(default_factory=lambda: {t: _TypeStatus() for t in PUSH_ORDER})
    last_seen: float | None = None

    def current(self) -> _Stream | None:
        """The open stream the proxy's Envoy is on: the one that last answered (ACK or NACK) a
        response of ours; before any answered, the newest. Another stream opened with the same
        node id (a probe, an Envoy that is replacing this one) has its own state and changes what
        status reports only once it answers."""
        return max(self.streams, key=lambda s: (s.answered, s.stream_id), default=None)

    def statuses(self) -> dict[str, _TypeStatus]:
        stream = self.current()
        return stream.status if stream is not None else self.types


@dataclass(eq=False)
class _StreamType:
    """Per stream, per type subscription state."""

    subscribed: bool = False
    names: frozenset[str] = frozenset()  # requested names (named types only)
    needs_response: bool = False  # a (re)subscription or a change of names
    sent_version: str | None = None
    sent_names: frozenset[str] | None = None
    last_nonce: str | None = None
    pending_since: float | None = None  # monotonic time of a response awaiting ACK/NACK
    nacked_version: str | None = None  # our latest response was rejected at this version
    nonces: OrderedDict[str, str] = field(default_factory=OrderedDict)  # nonce -> version
    pushed_version: str | None = None  # version of our latest response (a type left unchanged is not one)
    sent_digest: bytes | None = None  # content of our latest response (names and resources)
    acked_digest: bytes | None = None  # content the proxy ACKed last on this stream (None: unknown)
    carried: tuple[str, str] | None = None  # (version the proxy reports, version it counts as) after a skip


@dataclass(eq=False)
class _Stream:
    stream_id: int
    cond: threading.Condition
    peer: str = ""
    node_id: str | None = None
    types: dict[str, _StreamType] = field(default_factory=dict)
    closed: bool = False
    opened: bool = False  # on_stream_open queued
    # per type: what the proxy on this stream was sent, ACKed and rejected (its node's status while
    # this is the node's current stream)
    status: dict[str, _TypeStatus] = field(default_factory=lambda: {t: _TypeStatus() for t in PUSH_ORDER})
    answered: int = 0  # sequence number of this stream's latest answer to a latest response (0: none yet)
    abort: tuple[grpc.StatusCode, str] | None = None
    # Callback events, queued under the server lock in the order the state
    # changed, delivered in that order by whichever thread holds cb_lock.
    events: deque[tuple[str, tuple[Any, ...]]] = field(default_factory=deque)
    cb_lock: threading.RLock = field(default_factory=threading.RLock)


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------
class XdsServer:
    """ADS server: ``start()`` it, ``set_snapshot()`` per node, watch ``status()``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        callbacks: Iterable[object] = (),
        max_streams: int = 64,
        ordering_timeout: float = 5.0,
        unix_socket: str | None = None,
        push_unchanged: bool = False,
    ):
        self._host = host
        # True: every type of every new snapshot is sent, changed or not (how the server worked
        # before it pushed only what changed; `bench converge` measures both in one run)
        self._push_unchanged = push_unchanged
        self._requested_port = port
        # A Unix socket path, made 0600, in place of host:port: only processes of the socket's owner
        # (the local lab's Envoys) can connect. Its folder must be the owner's only, and whoever
        # starts the server must own the path (a stale socket there is replaced).
        self._unix = unix_socket
        self._port: int | None = None
        self._max_streams = max_streams
        self._ordering_timeout = ordering_timeout
        self._callbacks: list[object] = list(callbacks)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # any status change
        self._nodes: dict[str, _Node] = {}
        self._streams: set[_Stream] = set()
        self._nonce = itertools.count(1)
        self._stream_ids = itertools.count(1)
        self._answers = itertools.count(1)
        self._grpc: grpc.Server | None = None
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> int:
        """Bind and start serving; returns the bound port."""
        with self._lock:
            if self._grpc is not None:
                raise XdsServerError("server already started")
            server = grpc.server(
                futures.ThreadPoolExecutor(
                    max_workers=self._max_streams + 4, thread_name_prefix="xds-grpc"
                ),
                maximum_concurrent_rpcs=self._max_streams,
                options=[
                    # Never share the port with another live server (a stale
                    # test server would silently steal half the connections).
                    ("grpc.so_reuseport", 0),
                    # Envoy may send HTTP/2 keepalive pings on idle streams.
                    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                    ("grpc.http2.max_ping_strikes", 0),
                    ("grpc.keepalive_permit_without_calls", 1),
                    # Detect proxies that vanished without closing the socket.
                    ("grpc.keepalive_time_ms", 30_000),
                    ("grpc.keepalive_timeout_ms", 10_000),
                ],
            )
            ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(_AdsServicer(self), server)
            address = f"{self._host}:{self._requested_port}"
            if self._unix:
                address = f"unix:{self._unix}"
                try:
                    os.unlink(self._unix)  # left by a server that was killed: this one takes its place
                except FileNotFoundError:
                    pass
                except IsADirectoryError as exc:
                    raise XdsServerError(f"cannot bind xDS server to {address}: a folder is in the way") from exc
            try:
                port = server.add_insecure_port(address)
            except RuntimeError as exc:
                raise XdsServerError(f"cannot bind xDS server to {address}: {exc}") from exc
            if not port:
                raise XdsServerError(f"cannot bind xDS server to {address}")
            if self._unix:
                os.chmod(self._unix, 0o600)
            server.start()
            self._grpc = server
            self._port = port
            self._stopping = False
            log.info("xDS server listening on %s", address if self._unix else f"{self._host}:{port}")
            return port

    def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving; open streams are cancelled after ``grace`` seconds."""
        with self._lock:
            server, self._grpc = self._grpc, None
            if server is None:
                return
            self._stopping = True
            for stream in self._streams:
                stream.cond.notify_all()
        server.stop(grace).wait()
        # gRPC normally closes every stream through its done-callback; make sure.
        with self._lock:
            leftover = list(self._streams)
        for stream in leftover:
            self._close(stream)

    def __enter__(self) -> XdsServer:
        if self._grpc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(0)

    @property
    def port(self) -> int:
        if self._port is None:
            raise XdsServerError("server not started")
        return self._port

    @property
    def unix_socket(self) -> str | None:
        return self._unix

    @property
    def host(self) -> str:
        return self._host

    def add_callbacks(self, observer: object) -> None:
        with self._lock:
            self._callbacks.append(observer)

    # -- snapshots -----------------------------------------------------------
    def set_snapshot(self, node_id: str, snapshot: Snapshot) -> int:
        """Check ``snapshot`` is consistent, make it current for ``node_id``, push it.

        Raises :class:`~lab.xds.errors.InconsistentSnapshot` (nothing changes)
        or :class:`~lab.xds.errors.SnapshotVersionError` when the version
        string was already used for this node with different content (ACKs
        would be ambiguous). Setting the same version with the same content is
        a no-op. Returns the node's generation, bumped on every change.
        """
        if not node_id:
            raise XdsServerError("node_id must be non-empty")
        snapshot.consistent()
        with self._lock:
            node = self._node_locked(node_id)
            known = node.history.get(snapshot.version)
            if known is not None and known != snapshot.digest:
                raise SnapshotVersionError(
                    f"version {snapshot.version!r} was already used for node {node_id!r} "
                    "with different resources; use a new version"
                )
            if node.snapshot is not None and node.snapshot == snapshot:
                return node.generation
            node.snapshot = snapshot
            node.generation += 1
            node.history[snapshot.version] = snapshot.digest
            node.history.move_to_end(snapshot.version)
            while len(node.history) > _HISTORY_KEPT:
                node.history.popitem(last=False)
            for stream in node.streams:
                stream.cond.notify_all()
            self._changed.notify_all()
            log.info("node %s: snapshot %s (generation %d)", node_id, snapshot.version, node.generation)
            return node.generation

    def get_snapshot(self, node_id: str) -> Snapshot | None:
        with self._lock:
            node = self._nodes.get(node_id)
            return node.snapshot if node else None

    def clear_snapshot(self, node_id: str) -> None:
        """Forget a node's snapshot (its proxy keeps what it has; nothing is pushed)."""
        with self._lock:
            node = self._nodes.get(node_id)
            if node is not None:
                node.snapshot = None

    # -- observation ---------------------------------------------------------
    def connected(self) -> list[str]:
        """Node ids with an open stream."""
        with self._lock:
            return sorted(nid for nid, node in self._nodes.items() if node.streams)

    def nodes(self) -> list[str]:
        """Node ids known to this server (connected at some point, or given a snapshot)."""
        with self._lock:
            return sorted(self._nodes)

    def status(self, node_id: str) -> dict[str, Any]:
        """Connection and per-type ACK/NACK state of one node (a fresh dict)."""
        with self._lock:
            node = self._nodes.get(node_id)
            if node is None:
                node = _Node(node_id)
                known = False
            else:
                known = True
            return {
                "node_id": node_id,
                "known": known,
                "connected": bool(node.streams),
                "streams": len(node.streams),
                "last_seen": node.last_seen,
                "snapshot_version": node.snapshot.version if node.snapshot else None,
                "generation": node.generation,
                "types": {SHORT_NAMES[t]: s.as_dict(t) for t, s in node.statuses().items()},
            }

    def wait_for_ack(
        self,
        node_id: str,
        version: str,
        timeout: float = 10.0,
        *,
        types: Iterable[str] | None = None,
    ) -> bool:
        """Wait until the node ACKed ``version`` for every type the snapshot needs.

        The types are :meth:`Snapshot.expected_types` of the snapshot with that
        version, or ``types`` (type URLs or short names like ``"cds"``). Returns False at once when one of them
        NACKed this version or when the version was superseded before being
        fully ACKed, and False after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                node = self._nodes.get(node_id)
                snap = node.snapshot if node else None
                if snap is not None and snap.version == version:
                    wanted = (
                        tuple(_TYPE_BY_SHORT.get(t, t) for t in types)
                        if types is not None
                        else snap.expected_types()
                    )
                    current = node.statuses()
                    statuses = [current[t] for t in wanted]
                    if any(s.nack and s.nack["version"] == version for s in statuses):
                        return False
                    if all(s.acked_version == version for s in statuses):
                        return True
                elif node is not None and version in node.history:
                    return False  # superseded by a newer snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        """Wait until ``predicate(server)`` is true (re-checked on every state change)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.5))
            return True

    # -- stream handling (called by the servicer) ------------------------------
    def _node_locked(self, node_id: str) -> _Node:
        node = self._nodes.get(node_id)
        if node is None:
            node = self._nodes[node_id] = _Node(node_id)
        return node

    def _deliver(self, stream: _Stream) -> None:
        """Run the stream's queued callback events, in order, outside the server lock."""
        with stream.cb_lock:
            while True:
                with self._lock:
                    if not stream.events:
                        return
                    method, args = stream.events.popleft()
                    observers = list(self._callbacks)
                self._call_observers(observers, method, args)

    @staticmethod
    def _call_observers(observers: list[object], method: str, args: tuple[Any, ...]) -> None:
        for observer in observers:
            fn = getattr(observer, method, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:  # an observer must not break a stream
                log.exception("xDS callback %s.%s failed", type(observer).__name__, method)

    def _stream(
        self, requests: Iterator[discovery_pb2.DiscoveryRequest], context: grpc.ServicerContext
    ) -> Iterator[discovery_pb2.DiscoveryResponse]:
        stream = _Stream(stream_id=next(self._stream_ids), cond=threading.Condition(self._lock), peer=context.peer())
        with self._lock:
            if self._stopping:
                context.abort(grpc.StatusCode.UNAVAILABLE, "xDS server is stopping")
            self._streams.add(stream)
        context.add_callback(lambda: self._close(stream))
        reader = threading.Thread(
            target=self._read_loop, args=(stream, requests), name=f"xds-read-{stream.stream_id}", daemon=True
        )
        reader.start()
        log.debug("stream %d opened from %s", stream.stream_id, stream.peer)
        try:
            while True:
                with self._lock:
                    while True:
                        if stream.abort is not None:
                            code, message = stream.abort
                            break
                        if stream.closed or self._stopping:
                            return
                        out, wait = self._next_response_locked(stream)
                        if out is not None or stream.events:
                            break
                        stream.cond.wait(wait)
                if stream.abort is not None:
                    context.abort(code, message)
                self._deliver(stream)  # on_response (queued when it was built), or on_ack of an unchanged type
                if out is not None:
                    yield out
        finally:
            self._close(stream)

    def _read_loop(self, stream: _Stream, requests: Iterator[discovery_pb2.DiscoveryRequest]) -> None:
        try:
            for request in requests:
                if not self._handle_request(stream, request):
                    break
        except grpc.RpcError as exc:
            # The RPC ended (client went away, or the server is stopping).
            log.debug("stream %d: request stream ended: %s", stream.stream_id, exc)
        except Exception:
            log.exception("stream %d: request handling failed", stream.stream_id)
            with self._lock:
                stream.abort = (grpc.StatusCode.INTERNAL, "xDS server error while handling a request")
                stream.cond.notify_all()
            return
        self._close(stream)

    def _handle_request(self, stream: _Stream, req: discovery_pb2.DiscoveryRequest) -> bool:
        """Update state for one request; returns False when the stream must end."""
        with self._lock:
            if stream.closed:
                return False
            if stream.node_id is None:
                if not req.node.id:
                    stream.abort = (grpc.StatusCode.INVALID_ARGUMENT, "first DiscoveryRequest must carry node.id")
                    stream.cond.notify_all()
                    return False
                stream.node_id = req.node.id
                node = self._node_locked(stream.node_id)
                node.streams.add(stream)
                stream.opened = True
                stream.events.append(("on_stream_open", (stream.node_id,)))
                log.info("node %s connected (stream %d, %s)", stream.node_id, stream.stream_id, stream.peer)
            node_id = stream.node_id
            node = self._node_locked(node_id)
            node.last_seen = time.time()
            type_url = req.type_url
            stream.events.append(("on_request", (node_id, type_url, req)))
            if type_url not in _GATES:
                log.warning("node %s asked for unsupported type %s; ignoring", node_id, type_url)
            else:
                stream.events.extend(self._apply_request_locked(stream, node, req))
            stream.cond.notify_all()
            self._changed.notify_all()
        self._deliver(stream)
        return True

    def _apply_request_locked(
        self, stream: _Stream, node: _Node, req: discovery_pb2.DiscoveryRequest
    ) -> list[tuple[str, tuple[Any, ...]]]:
        type_url = req.type_url
        st = stream.types.setdefault(type_url, _StreamType())
        status = stream.status[type_url]
        names = frozenset(req.resource_names)
        nonce = req.response_nonce
        events: list[tuple[str, tuple[Any, ...]]] = []
        nack = req.HasField("error_detail")
        # In SotW every request carries, in version_info, the version of this
        # type the client currently runs (after a NACK: the last good one; on
        # a fresh start: ""). That is what status reports as acked_version,
        # whether or not the request answers our latest response.
        status.acked_version = req.version_info or None
        if st.carried is not None and req.version_info == st.carried[0]:
            status.acked_version = st.carried[1]  # the same content, counted at the newer version

        if not nonce:
            # (Re)subscription: always answer it with the current snapshot.
            st.subscribed = True
            st.names = names
            st.needs_response = True
            return events

        if nonce != st.last_nonce:
            # Stale: answers a response that has been superseded. A NACK is
            # still worth recording if we know which version it rejected.
            if nack and nonce in st.nonces:
                events.append(self._record_nack_locked(node, stream, type_url, st.nonces[nonce], req))
            return events

        # Answers our latest response.
        st.pending_since = None
        stream.answered = next(self._answers)
        if nack:
            # Keep st.sent_version: the rejected version is not sent again on
            # this stream; the next snapshot (new version) will be.
            st.nacked_version = st.nonces.get(nonce, st.sent_version)
            st.acked_digest = None  # Envoy may have applied part of it: what it runs is unknown
            events.append(self._record_nack_locked(node, stream, type_url, st.nacked_version, req))
        else:
            st.nacked_version = None
            st.acked_digest = st.sent_digest
            status.nack = None  # a newer response was accepted
            events.append(("on_ack", (node.node_id, type_url, req.version_info)))
        if type_url not in WILDCARD_TYPES and names != st.names:
            st.names = names
            if st.sent_names is not None and names <= st.sent_names:
                # Only unsubscribed names: the client drops those itself, and
                # what it still wants was in our last response.
                st.sent_names = names
            else:
                st.needs_response = True
        return events

    def _record_nack_locked(
        self, node: _Node, stream: _Stream, type_url: str, version: str | None, req: discovery_pb2.DiscoveryRequest
    ) -> tuple[str, tuple[Any, ...]]:
        message = req.error_detail.message
        stream.status[type_url].nack = {"version": version, "message": message, "time": time.time()}
        log.warning("node %s NACKed %s version %s: %s", node.node_id, SHORT_NAMES[type_url], version, message)
        return ("on_nack", (node.node_id, type_url, version, message))

    def _next_response_locked(
        self, stream: _Stream
    ) -> tuple[discovery_pb2.DiscoveryResponse | None, float | None]:
        """The next response due on ``stream`` (marked as sent), or (None, seconds to wait)."""
        if stream.node_id is None:
            return None, None
        node = self._nodes[stream.node_id]
        snap = node.snapshot
        if snap is None:
            return None, None
        now = time.monotonic()
        wait: float | None = None
        for type_url in PUSH_ORDER:
            st = stream.types.get(type_url)
            if st is None or not st.subscribed:
                continue
            due = st.needs_response or st.sent_version != snap.version
            if not due:
                continue
            if type_url in WILDCARD_TYPES:
                send_names = frozenset(snap.resources(type_url))
            else:
                if not st.names:
                    # Subscribed to nothing: nothing to say until names arrive.
                    st.needs_response = False
                    continue
                send_names = st.names & frozenset(snap.resources(type_url))
            # Ordering gate: hold back until what this type depends on is
            # answered; and do not send listeners/routes of a version whose
            # clusters/endpoints/secrets the proxy rejected (it would run them
            # against its old clusters): they wait for the next snapshot.
            held_for = None
            blocked = False
            for gate in _GATES[type_url]:
                gst = stream.types.get(gate)
                if gst is not None and gst.nacked_version == snap.version:
                    blocked = True
                elif gst is not None and gst.pending_since is not None:
                    left = gst.pending_since + self._ordering_timeout - now
                    if left > 0:
                        held_for = left if held_for is None else max(held_for, left)
            if blocked:
                continue
            if held_for is not None:
                wait = held_for if wait is None else min(wait, held_for)
                continue
            if not st.needs_response and not self._push_unchanged and self._unchanged_locked(node, stream, st, type_url, snap, send_names):
                continue
            return self._build_response_locked(node, stream, st, type_url, snap, send_names), None
        return None, wait

    @staticmethod
    def _content_digest(snap: Snapshot, type_url: str, names: frozenset[str]) -> bytes:
        serialized = snap.serialized(type_url)
        h = hashlib.sha256()
        for name in sorted(names):
            h.update(name.encode() + b"\0")
            h.update(serialized[name])
            h.update(b"\0")
        return h.digest()

    def _unchanged_locked(
        self, node: _Node, stream: _Stream, st: _StreamType, type_url: str, snap: Snapshot,
        names: frozenset[str],
    ) -> bool:
        """True (and the type counted as ACKed at ``snap.version``) when the proxy ACKed exactly
        this content on this stream and nothing of it is in flight: nothing to send."""
        if st.acked_digest is None or st.pending_since is not None or st.nacked_version is not None:
            return False
        parent = stream.types.get(_PARENT.get(type_url, ""))
        if parent is not None and parent.pushed_version == snap.version:
            # Envoy re-creates the clusters (listeners) an update changes, and a re-created
            # cluster warms until it gets its endpoints again: EDS follows every CDS push, and
            # RDS every LDS push, even when unchanged.
            return False
        if self._content_digest(snap, type_url, names) != st.acked_digest:
            return False
        status = stream.status[type_url]
        reported = st.carried[0] if st.carried is not None else status.acked_version
        st.carried = (reported, snap.version) if reported is not None else None
        st.sent_version = snap.version
        status.last_sent_version = snap.version
        status.acked_version = snap.version
        status.nack = None
        stream.events.append(("on_ack", (node.node_id, type_url, snap.version)))
        self._changed.notify_all()
        log.debug("node %s: %s unchanged at version %s, not sent", node.node_id, SHORT_NAMES[type_url], snap.version)
        return True

    def _build_response_locked(
        self,
        node: _Node,
        stream: _Stream,
        st: _StreamType,
        type_url: str,
        snap: Snapshot,
        names: frozenset[str],
    ) -> discovery_pb2.DiscoveryResponse:
        nonce = str(next(self._nonce))
        serialized = snap.serialized(type_url)
        response = discovery_pb2.DiscoveryResponse(version_info=snap.version, type_url=type_url, nonce=nonce)
        add = response.resources.add  # each resource's Any, made from its bytes in the response itself
        for name in sorted(names):
            add(type_url=type_url, value=serialized[name])
        st.needs_response = False
        st.sent_version = snap.version
        st.sent_digest = self._content_digest(snap, type_url, names)
        st.pushed_version = snap.version
        st.carried = None
        st.sent_names = st.names if type_url not in WILDCARD_TYPES else names
        st.last_nonce = nonce
        st.pending_since = time.monotonic()
        st.nonces[nonce] = snap.version
        while len(st.nonces) > _NONCES_KEPT:
            st.nonces.popitem(last=False)
        stream.status[type_url].last_sent_version = snap.version
        stream.events.append(("on_response", (node.node_id, type_url, response)))
        self._changed.notify_all()
        log.debug(
            "node %s: send %s version %s (%d resources, nonce %s)",
            node.node_id, SHORT_NAMES[type_url], snap.version, len(names), nonce,
        )
        return response

    def _close(self, stream: _Stream) -> None:
        with self._lock:
            self._close_locked(stream)
        self._deliver(stream)

    def _close_locked(self, stream: _Stream) -> None:
        """Mark closed (once); queue on_stream_closed for a stream that was opened."""
        if stream.closed:
            return
        stream.closed = True
        self._streams.discard(stream)
        if stream.node_id is not None:
            node = self._nodes.get(stream.node_id)
            if node is not None:
                if node.current() is stream:  # what the proxy last reported stays its status while disconnected
                    node.types = stream.status
                node.streams.discard(stream)
                node.last_seen = time.time()
            log.info("node %s disconnected (stream %d)", stream.node_id, stream.stream_id)
        if stream.opened:
            stream.events.append(("on_stream_closed", (stream.node_id,)))
        stream.cond.notify_all()
        self._changed.notify_all()


class _AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, server: XdsServer):
        self._server = server

    def StreamAggregatedResources(self, request_iterator, context):  # noqa: N802 (gRPC name)
        return self._server._stream(request_iterator, context)

    def DeltaAggregatedResources(self, request_iterator, context):  # noqa: N802 (gRPC name)
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "incremental (delta) xDS is not implemented; configure ADS with api_type GRPC",
        )
