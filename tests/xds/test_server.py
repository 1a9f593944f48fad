"""XdsServer against a real gRPC ADS client (no Envoy): protocol behaviour."""

from __future__ import annotations

import queue
import threading
import time

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2

from lab.xds import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    InconsistentSnapshot,
    Snapshot,
    SnapshotVersionError,
    XdsServer,
)

SHORT = {CLUSTER_TYPE: "cds", ENDPOINT_TYPE: "eds", LISTENER_TYPE: "lds", ROUTE_TYPE: "rds"}


def channel_to(port: int) -> grpc.Channel:
    """A channel with subchannels of its own. gRPC shares a process-wide pool of subchannels by
    address: a channel that found a port refused leaves its subchannel backing off, and a new
    channel to the same address, once another server listens there (an ephemeral port handed out
    again, as happens over a whole suite in one process), failed its first call at once with that
    "Connection refused"."""
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])


class AdsClient:
    """A minimal SotW ADS client over a real gRPC channel."""

    def __init__(self, port: int, node_id: str, channel: grpc.Channel | None = None):
        self.node_id = node_id
        self.channel = channel or channel_to(port)
        self._own_channel = channel is None
        self.stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        self._requests: queue.Queue = queue.Queue()
        self.responses: queue.Queue = queue.Queue()
        self.error: grpc.RpcError | None = None
        self._first = True
        self.call = self.stub.StreamAggregatedResources(iter(self._requests.get, None))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        try:
            for resp in self.call:
                self.responses.put(resp)
        except grpc.RpcError as exc:
            self.error = exc
        self.responses.put(None)

    def send(self, type_url, *, version="", nonce="", names=(), error=None, with_node=True):
        req = discovery_pb2.DiscoveryRequest(
            type_url=type_url, version_info=version, response_nonce=nonce, resource_names=list(names)
        )
        if with_node and self._first:
            req.node.id = self.node_id
        self._first = False
        if error is not None:
            req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        self._requests.put(req)

    def subscribe(self, type_url, names=()):
        self.send(type_url, names=names)

    def ack(self, resp, names=()):
        self.send(resp.type_url, version=resp.version_info, nonce=resp.nonce, names=names)

    def nack(self, resp, message, *, last_good="", names=()):
        self.send(resp.type_url, version=last_good, nonce=resp.nonce, names=names, error=message)

    def subscribe_and_ack_all(self, endpoints=("a",), routes=("rc",)) -> None:
        """Subscribe to clusters, endpoints, listeners and routes in the order Envoy does (each
        after the previous answer) and ACK each answer."""
        for type_url, names in ((CLUSTER_TYPE, ()), (ENDPOINT_TYPE, endpoints), (LISTENER_TYPE, ()),
                                (ROUTE_TYPE, routes)):
            self.subscribe(type_url, names=names)
            self.ack(self.recv(), names=names)

    def recv(self, timeout=5.0) -> discovery_pb2.DiscoveryResponse:
        resp = self.responses.get(timeout=timeout)
        if resp is None:
            raise AssertionError(f"stream ended: {self.error}")
        return resp

    def expect_nothing(self, timeout=0.5):
        try:
            resp = self.responses.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected response: {resp and SHORT.get(resp.type_url)} {resp and resp.version_info}")

    def close(self):
        self._requests.put(None)
        self.call.cancel()
        if self._own_channel:
            self.channel.close()


def names_of(resp):
    out = []
    for any_msg in resp.resources:
        if resp.type_url == CLUSTER_TYPE:
            msg = cluster_pb2.Cluster()
            any_msg.Unpack(msg)
            out.append(msg.name)
        else:
            out.append(any_msg.TypeName())
    return out


@pytest.fixture
def server():
    srv = XdsServer()
    srv.start()
    yield srv
    srv.stop(0)


@pytest.fixture
def clients(server):
    made = []

    def make(node_id="node-1", port=None, channel=None):
        c = AdsClient(port or server.port, node_id, channel)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def snap(res, version, *, clusters=("a",), rewrite="/", base=9000):
    """EDS clusters, their endpoints, one RDS listener routing /<name> to each (``base``
    moves the endpoints, the clusters' EDS service names and the listener: every type changes)."""
    return Snapshot.from_dicts(
        version,
        clusters=[res.eds_cluster(c, None if base == 9000 else c) for c in clusters],
        endpoints=[res.cla(c, [base + i]) for i, c in enumerate(clusters)],
        listeners=[res.listener("ingress", base + 1000, "rc")],
        routes=[res.route_config("rc", [res.route(f"/{c}", c, rewrite) for c in clusters])],
    )


def wait_status(server, node_id, pred, timeout=5.0):
    assert server.wait_for(lambda s: pred(s.status(node_id)), timeout), server.status(node_id)


# ----------------------------------------------------------------------------------
def test_receives_cds_and_ack_is_recorded(server, clients, res):
    server.set_snapshot("node-1", snap(res, "v1", clusters=("a", "b")))
    c = clients()
    c.subscribe(CLUSTER_TYPE)
    resp = c.recv()
    assert resp.type_url == CLUSTER_TYPE and resp.version_info == "v1" and resp.nonce
    assert sorted(names_of(resp)) == ["a", "b"]
    st = server.status("node-1")
    assert st["connected"] and st["streams"] == 1
    assert st["types"]["cds"]["last_sent_version"] == "v1"
    assert st["types"]["cds"]["acked_version"] is None
    c.ack(resp)
    wait_status(server, "node-1", lambda s: s["types"]["cds"]["acked_version"] == "v1")
    assert server.status("node-1")["types"]["cds"]["nack"] is None
    c.expect_nothing(0.3)  # an ACK of the current version gets no answer


def test_eds_and_rds_send_only_requested_names(server, clients, res):
    server.set_snapshot("node-1", snap(res, "v1", clusters=("a", "b", "c")))
    c = clients()
    c.subscribe(ENDPOINT_TYPE, names=["a", "c", "not-there"])
    resp = c.recv()
    assert resp.type_url == ENDPOINT_TYPE
    got = []
    for any_msg in resp.resources:
        m = endpoint_pb2.ClusterLoadAssignment()
        any_msg.Unpack(m)
        got.append(m.cluster_name)
    assert sorted(got) == ["a", "c"]
    # Asking for other names (in the ACK) gets a new response with them.
    c.ack(resp, names=["b"])
    resp2 = c.recv()
    assert resp2.version_info == "v1" and len(resp2.resources) == 1
    c.ack(resp2, names=["b"])
    c.expect_nothing(0.3)


def test_nack_records_error_and_server_does_not_resend(server, clients, res):
    server.set_snapshot("node-1", snap(res, "v1"))
    c = clients()
    c.subscribe(CLUSTER_TYPE)
    v1 = c.recv()
    c.ack(v1)
    assert server.wait_for_ack("node-1", "v1", timeout=5, types=[CLUSTER_TYPE])
    server.set_snapshot("node-1", snap(res, "v2", clusters=("a", "b")))
    v2 = c.recv()
    assert v2.version_info == "v2"
    c.nack(v2, "cluster b: bad lb config", last_good="v1")
    wait_status(server, "node-1", lambda s: s["types"]["cds"]["nack"] is not None)
    st = server.status("node-1")["types"]["cds"]
    assert st["nack"]["version"] == "v2"
    assert st["nack"]["message"] == "cluster b: bad lb config"
    assert st["acked_version"] == "v1"  # the last good config
    assert st["last_sent_version"] == "v2"
    c.expect_nothing(1.0)  # the rejected version is not sent again
    assert not server.wait_for_ack("node-1", "v2", timeout=0.1, types=["cds"])
    # The next snapshot goes out, and its ACK clears the NACK.
    server.set_snapshot("node-1", snap(res, "v3", clusters=("a", "c")))
    v3 = c.recv()
    assert v3.version_info == "v3"
    c.ack(v3)
    assert server.wait_for_ack("node-1", "v3", timeout=5, types=[CLUSTER_TYPE])
    assert server.status("node-1")["types"]["cds"]["nack"] is None


def test_new_snapshot_pushed_in_order_cds_eds_before_lds_rds(server, clients, res):
    server.set_snapshot("node-1", snap(res, "v1"))
    c = clients()
    # Subscribe to everything at once: the server answers clusters and
    # endpoints and holds listeners until those responses are answered.
    c.subscribe(CLUSTER_TYPE)
    c.subscribe(ENDPOINT_TYPE, names=["a"])
    c.subscribe(LISTENER_TYPE)
    c.subscribe(ROUTE_TYPE, names=["rc"])

    def round_trip(version):
        order = []
        first, second = c.recv(), c.recv()
        order += [first.type_url, second.type_url]
        c.expect_nothing(0.4)  # LDS is held until CDS and EDS are answered
        for r in (first, second):
            c.ack(r, names=["a"] if r.type_url == ENDPOINT_TYPE else ())
        lds = c.recv()
        order.append(lds.type_url)
        c.expect_nothing(0.4)  # RDS is held until LDS is answered
        c.ack(lds)
        rds = c.recv()
        order.append(rds.type_url)
        c.ack(rds, names=["rc"])
        assert {r.version_info for r in (first, second, lds, rds)} == {version}
        return [SHORT[t] for t in order]

    assert round_trip("v1") == ["cds", "eds", "lds", "rds"]
    assert server.wait_for_ack("node-1", "v1", timeout=5)
    server.set_snapshot("node-1", snap(res, "v2", rewrite="/v2/", base=9100))
    assert round_trip("v2") == ["cds", "eds", "lds", "rds"]
    assert server.wait_for_ack("node-1", "v2", timeout=5)
    st = server.status("node-1")["types"]
    assert {k: v["acked_version"] for k, v in st.items()} == {
        "sds": None, "cds": "v2", "eds": "v2", "lds": "v2", "rds": "v2"
    }


def test_only_changed_types_are_pushed_and_the_rest_count_as_acked(server, clients, res):
    """A new snapshot that changes only the routes sends only RDS; CDS, EDS and LDS, which the
    proxy ACKed with the same content on this stream, count as ACKed at the new version."""
    server.set_snapshot("node-1", snap(res, "v1"))
    c = clients()
    c.subscribe_and_ack_all()
    assert server.wait_for_ack("node-1", "v1", timeout=5)
    acks = []

    class Seen:
        def on_ack(self, node_id, type_url, version):
            acks.append((SHORT[type_url], version))

    server.add_callbacks(Seen())
    server.set_snapshot("node-1", snap(res, "v2", rewrite="/v2/"))
    rds = c.recv()
    assert rds.type_url == ROUTE_TYPE and rds.version_info == "v2"
    c.expect_nothing(0.4)  # nothing else changed: nothing else is sent
    c.ack(rds, names=["rc"])
    assert server.wait_for_ack("node-1", "v2", timeout=5)
    st = server.status("node-1")["types"]
    assert {k: (v["acked_version"], v["last_sent_version"]) for k, v in st.items()} == {
        "sds": (None, None), "cds": ("v2", "v2"), "eds": ("v2", "v2"), "lds": ("v2", "v2"), "rds": ("v2", "v2")}
    assert sorted(acks) == [("cds", "v2"), ("eds", "v2"), ("lds", "v2"), ("rds", "v2")]
    # a change of endpoints only: EDS alone
    server.set_snapshot("node-1", Snapshot.from_dicts(
        "v3", clusters=[res.eds_cluster("a")], endpoints=[res.cla("a", [9005])],
        listeners=[res.listener("ingress", 10000, "rc")],
        routes=[res.route_config("rc", [res.route("/a", "a", "/v2/")])]))
    eds = c.recv()
    assert eds.type_url == ENDPOINT_TYPE and eds.version_info == "v3"
    c.expect_nothing(0.4)
    c.ack(eds, names=["a"])
    assert server.wait_for_ack("node-1", "v3", timeout=5)


def test_a_nacked_type_is_sent_again_even_when_the_next_snapshot_restores_its_content(server, clients, res):
    """After a NACK what the proxy runs is unknown (Envoy may have taken part of it), so the
    next snapshot's routes are sent even when they equal the last ACKed ones."""
    server.set_snapshot("node-1", snap(res, "v1"))
    c = clients()
    c.subscribe_and_ack_all()
    server.set_snapshot("node-1", snap(res, "v2", rewrite="/bad/"))
    bad = c.recv()
    assert bad.type_url == ROUTE_TYPE
    c.nack(bad, "rejected", last_good="v1", names=["rc"])
    server.set_snapshot("node-1", snap(res, "v3"))  # the v1 routes again
    again = c.recv()
    assert again.type_url == ROUTE_TYPE and again.version_info == "v3"
    c.ack(again, names=["rc"])
    assert server.wait_for_ack("node-1", "v3", timeout=5)


def test_inconsistent_snapshot_refused(server, clients, res):
    server.set_snapshot("node-1", snap(res, "v1"))
    c = clients()
    c.subscribe(CLUSTER_TYPE)
    c.ack(c.recv())
    bad = Snapshot.from_dicts("v2", clusters=[res.eds_cluster("a")])  # no endpoints for "a"
    with pytest.raises(InconsistentSnapshot, match="ClusterLoadAssignment 'a'"):
        server.set_snapshot("node-1", bad)
    assert server.get_snapshot("node-1").version == "v1"
    assert server.status("node-1")["generation"] == 1
    c.expect_nothing(0.5)


def test_version_reuse_rules(server, res):
    assert server.set_snapshot("node-1", snap(res, "v1")) == 1
    assert server.set_snapshot("node-1", snap(res, "v1")) == 1  # same content: no-op
    with pytest.raises(SnapshotVersionError):
        server.set_snapshot("node-1", snap(res, "v1", clusters=("a", "b")))
    assert server.set_snapshot("node-1", snap(res, "v2")) == 2  # generation is monotonic


def test_two_nodes_are_isolated(server, clients, res):
    server.set_snapshot("node-a", snap(res, "a1", clusters=("a",)))
    server.set_snapshot("node-b", snap(res, "b1", clusters=("b1", "b2")))
    ca, cb = clients("node-a"), clients("node-b")
    ca.subscribe(CLUSTER_TYPE)
    cb.subscribe(CLUSTER_TYPE)
    ra, rb = ca.recv(), cb.recv()
    assert (ra.version_info, sorted(names_of(ra))) == ("a1", ["a"])
    assert (rb.version_info, sorted(names_of(rb))) == ("b1", ["b1", "b2"])
    ca.ack(ra)
    cb.ack(rb)
    server.set_snapshot("node-a", snap(res, "a2", clusters=("a", "z")))
    assert ca.recv().version_info == "a2"
    cb.expect_nothing(0.5)
    assert server.nodes() == ["node-a", "node-b"]
    assert server.status("node-b")["types"]["cds"]["acked_version"] == "b1"


def test_reconnect_to_a_new_server_gets_current_snapshot(res):
    first = XdsServer()
    port = first.start()
    channel = channel_to(port)
    second = None
    try:
        first.set_snapshot("node-1", snap(res, "v1"))
        c1 = AdsClient(port, "node-1", channel)
        c1.subscribe(CLUSTER_TYPE)
        r = c1.recv()
        c1.ack(r)
        assert first.wait_for_ack("node-1", "v1", timeout=5, types=[CLUSTER_TYPE])
        first.stop(0)
        # The stream ends when its server goes away.
        end = c1.responses.get(timeout=5)
        assert end is None
        assert not first.status("node-1")["connected"]

        second = XdsServer(port=port)
        second.set_snapshot("node-1", snap(res, "v1"))
        assert second.start() == port
        c2 = AdsClient(port, "node-1", channel)  # same channel: it reconnects
        # A reconnecting proxy reports the version it runs; it still gets an answer.
        c2.send(CLUSTER_TYPE, version="v1")
        r2 = c2.recv(timeout=10)
        assert r2.version_info == "v1"
        c2.ack(r2)
        assert second.wait_for_ack("node-1", "v1", timeout=5, types=[CLUSTER_TYPE])
        assert second.status("node-1")["connected"]
        c2.close()
    finally:
        first.stop(0)
        if second is not None:
            second.stop(0)
        channel.close()


def test_a_port_another_channel_found_refused_is_connected_afresh(res):
    """A port a stopped server left, tried (refused) by a channel still open, then bound by a new
    server: a client of the new server connects at its first call."""
    first = XdsServer()
    port = first.start()
    first.stop(0)
    stale = grpc.insecure_channel(f"127.0.0.1:{port}")   # the process-wide pool, as any other client's
    second = None
    try:
        tried = AdsClient(port, "n", stale)
        tried.subscribe(CLUSTER_TYPE)
        assert tried.responses.get(timeout=10) is None and tried.error.code() == grpc.StatusCode.UNAVAILABLE
        second = XdsServer(port=port)
        second.set_snapshot("n", snap(res, "v1"))
        assert second.start() == port
        c = AdsClient(port, "n")
        c.subscribe(CLUSTER_TYPE)
        assert c.recv(timeout=10).version_info == "v1"
        c.close()
    finally:
        if second is not None:
            second.stop(0)
        stale.close()


def test_callbacks_fire(res):
    events = []

    class Recorder:
        def on_stream_open(self, node_id):
            events.append(("open", node_id))

        def on_request(self, node_id, type_url, req):
            events.append(("request", SHORT[type_url], req.response_nonce != ""))

        def on_response(self, node_id, type_url, resp):
            events.append(("response", SHORT[type_url], resp.version_info))

        def on_nack(self, node_id, type_url, version, message):
            events.append(("nack", SHORT[type_url], version, message))

        def on_stream_closed(self, node_id):
            events.append(("closed", node_id))

    class Partial:  # observers implement only what they need
        def on_nack(self, node_id, type_url, version, message):
            events.append(("partial-nack", version))

    class Broken:  # a failing observer must not break the stream
        def on_request(self, *args):
            raise RuntimeError("observer bug")

    srv = XdsServer(callbacks=[Recorder(), Broken()])
    srv.add_callbacks(Partial())
    port = srv.start()
    try:
        srv.set_snapshot("n", snap(res, "v1"))
        c = AdsClient(port, "n")
        c.subscribe(CLUSTER_TYPE)
        r = c.recv()
        c.nack(r, "nope")
        assert srv.wait_for(lambda s: s.status("n")["types"]["cds"]["nack"] is not None, 5)
        c.close()
        assert srv.wait_for(lambda s: not s.status("n")["connected"], 5)
        deadline = time.monotonic() + 5
        while ("closed", "n") not in events and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        srv.stop(0)
    assert events == [
        ("open", "n"),
        ("request", "cds", False),
        ("response", "cds", "v1"),
        ("request", "cds", True),
        ("nack", "cds", "v1", "nope"),
        ("partial-nack", "v1"),
        ("closed", "n"),
    ]


def test_wait_for_ack(server, clients, res):
    server.set_snapshot("node-1", snap(res, "v1"))
    assert not server.wait_for_ack("node-1", "v1", timeout=0.2)  # nobody connected
    c = clients()
    c.subscribe(CLUSTER_TYPE)
    c.subscribe(ENDPOINT_TYPE, names=["a"])
    c.subscribe(LISTENER_TYPE)
    c.subscribe(ROUTE_TYPE, names=["rc"])
    done = threading.Event()
    result = []

    def waiter():
        result.append(server.wait_for_ack("node-1", "v1", timeout=10))
        done.set()

    threading.Thread(target=waiter, daemon=True).start()
    for _ in range(4):
        r = c.recv()
        assert not done.is_set()
        names = {ENDPOINT_TYPE: ["a"], ROUTE_TYPE: ["rc"]}.get(r.type_url, ())
        c.ack(r, names=names)
    assert done.wait(5) and result == [True]
    server.set_snapshot("node-1", snap(res, "v2", clusters=("a", "b")))
    assert not server.wait_for_ack("node-1", "v1", timeout=1)  # superseded
    r = c.recv()
    c.nack(r, "bad", last_good="v1")
    assert server.wait_for_ack("node-1", "v2", timeout=5) is False


def test_first_request_must_carry_node_id(server, clients):
    c = clients()
    c.send(CLUSTER_TYPE, with_node=False)
    assert c.responses.get(timeout=5) is None
    assert c.error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_delta_xds_is_unimplemented(server):
    with channel_to(server.port) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        call = stub.DeltaAggregatedResources(iter([discovery_pb2.DeltaDiscoveryRequest(type_url=CLUSTER_TYPE)]))
        with pytest.raises(grpc.RpcError) as info:
            list(call)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_status_of_unknown_node(server):
    st = server.status("nobody")
    assert st["known"] is False and st["connected"] is False and st["streams"] == 0
    assert server.nodes() == []


def test_stale_nonce_is_ignored(server, clients, res):
    server.set_snapshot("node-1", snap(res, "v1"))
    c = clients()
    c.subscribe(CLUSTER_TYPE)
    v1 = c.recv()
    server.set_snapshot("node-1", snap(res, "v2", clusters=("a", "b")))
    v2 = c.recv()  # v1 was never ACKed; the server moved on
    c.ack(v1)  # stale: answers a superseded response
    c.expect_nothing(0.3)  # ... so it triggers nothing
    # but the client did report running v1
    wait_status(server, "node-1", lambda s: s["types"]["cds"]["acked_version"] == "v1")
    c.ack(v2)
    assert server.wait_for_ack("node-1", "v2", timeout=5, types=[CLUSTER_TYPE])


def test_listeners_and_routes_of_a_version_with_rejected_clusters_are_held(server, clients, res):
    server.set_snapshot("node-1", snap(res, "v1"))
    c = clients()
    c.subscribe(CLUSTER_TYPE)
    c.ack(c.recv())
    c.subscribe(LISTENER_TYPE)
    c.ack(c.recv())
    assert server.wait_for_ack("node-1", "v1", timeout=5, types=[CLUSTER_TYPE, LISTENER_TYPE])
    server.set_snapshot("node-1", snap(res, "v2", clusters=("a", "b"), base=9100))
    cds = c.recv()
    assert cds.type_url == CLUSTER_TYPE
    c.nack(cds, "bad cluster", last_good="v1")
    c.expect_nothing(0.6)  # LDS v2 would run against the old clusters: held
    assert server.status("node-1")["types"]["lds"]["last_sent_version"] == "v1"
    server.set_snapshot("node-1", snap(res, "v3", clusters=("a", "c"), base=9200))
    cds3 = c.recv()
    assert (cds3.type_url, cds3.version_info) == (CLUSTER_TYPE, "v3")
    c.ack(cds3)
    lds3 = c.recv()
    assert (lds3.type_url, lds3.version_info) == (LISTENER_TYPE, "v3")


def test_a_client_that_never_acks_cannot_block_listeners_forever(res):
    srv = XdsServer(ordering_timeout=0.5)
    port = srv.start()
    try:
        srv.set_snapshot("n", snap(res, "v1"))
        c = AdsClient(port, "n")
        c.subscribe(CLUSTER_TYPE)
        c.subscribe(LISTENER_TYPE)
        assert c.recv().type_url == CLUSTER_TYPE
        started = time.monotonic()
        lds = c.recv(timeout=5)  # CDS never answered: LDS goes after the timeout
        assert lds.type_url == LISTENER_TYPE
        assert time.monotonic() - started >= 0.3
        c.close()
    finally:
        srv.stop(0)


def test_a_second_stream_of_the_same_node_that_never_answers_leaves_the_proxys_acks_alone(server, clients, res):
    """ACK/NACK state is kept per stream: a stream opened with a proxy's node id (a probe, say)
    that subscribes and goes away without answering neither hides what the proxy's own stream
    ACKed nor makes a wait for that version hang; its state goes with it."""
    server.set_snapshot("gw", snap(res, "v1"))
    envoy = clients("gw")
    envoy.subscribe_and_ack_all()
    assert server.wait_for_ack("gw", "v1", timeout=5)
    probe = clients("gw")
    probe.subscribe(CLUSTER_TYPE)
    probe.subscribe(ENDPOINT_TYPE, names=("a",))
    assert {probe.recv().type_url for _ in range(2)} == {CLUSTER_TYPE, ENDPOINT_TYPE}  # never answered
    wait_status(server, "gw", lambda st: st["streams"] == 2)
    types = server.status("gw")["types"]
    assert all(t["acked_version"] == "v1" and t["nack"] is None for t in types.values() if t["last_sent_version"]), types
    assert server.wait_for_ack("gw", "v1", timeout=1)
    probe.close()
    wait_status(server, "gw", lambda st: st["streams"] == 1)
    # the next push goes to the proxy's stream; its ACKs are what status and wait_for_ack read
    server.set_snapshot("gw", snap(res, "v2", rewrite="/v2/"))
    r = envoy.recv()
    assert r.type_url == ROUTE_TYPE and r.version_info == "v2"
    envoy.ack(r, names=("rc",))
    assert server.wait_for_ack("gw", "v2", timeout=5)
    envoy.expect_nothing()
    assert all(t["acked_version"] == "v2" == t["last_sent_version"] for t in server.status("gw")["types"].values()
               if t["last_sent_version"]), server.status("gw")["types"]


def test_a_nack_on_a_second_stream_is_that_streams_not_the_proxys(server, clients, res):
    """A stream that NACKs while the proxy's stream ACKed the same version: once the proxy's stream
    answers again, status reports its state, and the second stream's state goes when it closes."""
    server.set_snapshot("gw", snap(res, "v1"))
    envoy = clients("gw")
    envoy.subscribe_and_ack_all()
    other = clients("gw")
    other.subscribe(CLUSTER_TYPE)
    other.nack(other.recv(), "rejected by a stream that is not the proxy's")
    wait_status(server, "gw", lambda st: st["types"]["cds"]["nack"] is not None)  # it answered last
    other.close()
    wait_status(server, "gw", lambda st: st["streams"] == 1)
    st = server.status("gw")
    assert st["types"]["cds"]["nack"] is None and st["types"]["cds"]["acked_version"] == "v1", st["types"]
    assert server.wait_for_ack("gw", "v1", timeout=1)
