"""Configuration changes on a running gateway: routes come and go without restarting Envoy
or failing requests on the routes that stay, and a configuration Envoy rejects (NACK) leaves
it serving the previous one.
"""
import threading
import time

import pytest

from lab.bench import manifests as m

from .conftest import start_lab

pytestmark = pytest.mark.envoy

NS = "it-dyn"


def docs():
    return m.base(NS) + [
        m.virtual_node("stable", NS), m.app("stable", NS), m.virtual_service("stable", NS, node="stable"),
        m.virtual_node("other", NS), m.app("other", NS), m.virtual_service("other", NS, node="other"),
        m.gateway_route("stable", NS, {"prefix": "/stable"}, "stable"),
    ]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with start_lab(tmp_path_factory, NS, docs(), ready=["/stable"]) as lab:
        yield lab


class Load:
    """GET /stable in a loop until stopped: one keep-alive connection (a reused connection the
    gateway closed counts as a failure) and one new connection per request."""

    def __init__(self, lab, path="/stable", max_seconds=60):
        self.lab, self.path, self.max_seconds = lab, path, max_seconds
        self.ok = 0
        self.failures: list = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(keep,), daemon=True) for keep in (True, False)]

    def _run(self, keep_alive):
        h = self.lab.http(retry_stale=False, timeout=5)
        end = time.time() + self.max_seconds
        try:
            while not self._stop.is_set() and time.time() < end:
                try:
                    r = h.get(self.path)
                    if r.status == 200 and r.service == "stable":
                        self.ok += 1
                    else:
                        self.failures.append((r.status, r.body[:100]))
                except Exception as exc:  # no answer at all is a failure too
                    self.failures.append(repr(exc))
                if not keep_alive:
                    h.close()
        finally:
            h.close()

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(10)


def _listener_stats(lab):
    return lab.target.stats("gateway", filter=r"^listener_manager\.(listener_added|listener_modified|listener_removed|"
                                              r"total_filter_chains_draining)$")


def test_routes_change_under_load_without_restart_or_failed_requests(lab):
    pid = lab.envoy_pid("gateway")
    listeners_before = _listener_stats(lab)
    with Load(lab) as load:
        for i in range(20):
            lab.apply(m.gateway_route(f"churn{i}", NS, {"prefix": f"/churn/{i}"}, "other"), wait=False)
            lab.wait_for(f"/churn/{i}", check=lambda r: r.service == "other", timeout=10)
            lab.delete("GatewayRoute", f"churn{i}")
            lab.wait_for(f"/churn/{i}", status=404, timeout=10)
        time.sleep(0.2)
    assert load.failures == [], load.failures[:5]
    assert load.ok >= 20
    assert lab.envoy_pid("gateway") == pid  # the same Envoy process took every change
    # routes arrive over RDS: no listener was replaced or drained (that would close connections)
    assert _listener_stats(lab) == listeners_before


def _nack(lab):
    return next((t["nack"] for t in lab.proxy_status("gateway")["types"].values() if t.get("nack")), None)


def _envoy_runtime(lab, key, value):
    """Set a runtime value on the gateway Envoy through its admin socket (POST /runtime_modify)."""
    r = lab.target.admin("gateway", f"/runtime_modify?{key}={value}", method="POST")
    assert r.status == 200, r.text


def test_a_route_envoy_rejects_is_left_out_and_the_rest_of_the_change_is_served(lab):
    """The validator and the lab keep Envoy-incompatible regexes out (RE2 syntax is checked, and
    the lab raises Envoy's RE2 program-size limit), so the gateway is made strict instead: with
    re2.max_program_size.error_level=20 Envoy refuses a route configuration holding a regex larger
    than the small ones prefix rewrites use ('^/stable/*' is 5). The apply is accepted and Envoy
    NACKs it; the daemon finds the route with the large regex, leaves it out and marks it
    ConfigRejected, and the other route of the same apply is served."""
    _envoy_runtime(lab, "re2.max_program_size.error_level", 20)
    try:
        big = "/bad/(alpha|bravo|charlie|delta|echo|foxtrot)[0-9]+"
        out = lab.target.try_apply(m.text(m.gateway_route("bad-regex", NS, {"path": {"regex": big}}, "stable"),
                                          m.gateway_route("after", NS, {"prefix": "/after"}, "stable")), is_text=True)
        assert not out["rejected"], out["problems"]
        lab.wait_for("/after", timeout=10)  # the good route of the same apply is served
        assert lab.get("/stable").service == "stable"  # and what was there keeps serving
        deadline = time.time() + 10
        cond = {}
        while time.time() < deadline and cond.get("reason") != "ConfigRejected":
            cond = lab.target.get("GatewayRoute", "bad-regex", NS)[0].get("status", {}).get("conditions", [{}])[0]
            time.sleep(0.05)
        assert cond.get("status") == "False" and cond.get("reason") == "ConfigRejected", cond
        assert "program size" in cond["message"], cond
        assert lab.get("/bad/alpha1").status == 404  # the rejected route is not in force
        after = lab.target.get("GatewayRoute", "after", NS)[0]["status"]["conditions"][0]
        assert after["status"] == "True", after
        events = lab.target.events("VirtualGateway", "gateway", NS)
        assert any(e["reason"] == "ConfigRejected" for e in events), events
    finally:
        _envoy_runtime(lab, "re2.max_program_size.error_level", 1_000_000)  # the lab's own setting
    lab.delete("GatewayRoute", "bad-regex")
    assert _nack(lab) is None
    lab.delete("GatewayRoute", "after")


def test_a_bad_snapshot_pushed_directly_is_nacked_and_the_old_one_keeps_serving(tmp_path):
    """Without the lab: an xDS server and a gateway Envoy (lab/bench/converge.Floor); the
    snapshot is broken after translation, so no validator is involved."""
    from lab.bench.converge import NS as BNS
    from lab.bench.converge import Floor, Poller
    from lab.model import validate_texts
    from lab.translate import ir as irmod
    from lab.translate import to_envoy
    from lab.xds.snapshot import Snapshot

    from .conftest import envoy_or_skip
    envoy_or_skip()
    base = validate_texts([("<base>", m.text(m.scale(1, BNS)))]).resources
    with Floor(tmp_path) as floor:
        good, _, _ = floor.snapshot_for(base)
        floor.push(good, timeout=30)
        poll = Poller("127.0.0.1", floor.gw_port)
        try:
            poll.until("/r0/", 200, timeout=20, starting=True)
            from lab.model import World
            world = World(base + validate_texts([("<new>", m.text(
                m.gateway_route("new", BNS, {"prefix": "/new"}, "vs0")))]).resources)
            envoy = to_envoy(irmod.gateway_ir(world, world.by_kind["VirtualGateway"][0], floor.placement))
            fixed = Snapshot.from_dicts("fixed", **envoy)
            ingress = next(r for r in envoy["routes"] if r["name"].startswith("rds_ingress"))
            route = dict(ingress["virtual_hosts"][0]["routes"][0], name="broken",
                         match={"safe_regex": {"regex": "/[a-z]{1,200}"}})
            ingress["virtual_hosts"][0]["routes"].insert(0, route)
            bad = Snapshot.from_dicts("broken", **envoy)
            floor.xds.set_snapshot(floor.gw, bad)
            assert not floor.xds.wait_for_ack(floor.gw, "broken", 10)
            rds = floor.xds.status(floor.gw)["types"]["rds"]
            assert rds["nack"] and rds["nack"]["version"] == "broken", rds
            assert rds["acked_version"] == good.version  # Envoy still runs the good routes
            assert poll.status("/r0/") == 200
            assert poll.status("/new") == 404
            floor.push(fixed)
            assert poll.status("/new") == 200
            assert floor.xds.status(floor.gw)["types"]["rds"]["nack"] is None
        finally:
            poll.close()
