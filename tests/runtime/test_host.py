"""testinfra checks of this host while the lab runs, and after it is stopped."""
import stat
import time

import pytest
import testinfra

from lab.store import Store

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def host():
    return testinfra.get_host("local://")


def _lab_ports(lab) -> dict:
    store = Store(lab.client.paths.db)
    try:
        return {k[len("port:"):]: v for k, v in store.kv_items("port:").items()}
    finally:
        store.close()


def _listening(host) -> set[str]:
    return set(host.socket.get_listening_sockets())


def test_everything_the_lab_listens_on_is_loopback_only(lab, host):
    lab.apply("manifests/walkthrough/")
    listening = _listening(host)
    ports = _lab_ports(lab)
    in_use = {name: p for name, p in ports.items() if any(s.endswith(f":{p}") for s in listening)}
    assert "api" in in_use, (ports, listening)
    assert any(n.startswith("svc:") for n in in_use), "the gateway's exposed port is not listening"
    # on TCP: the App Mesh API and the data plane only; control, xDS and Envoy admin are Unix sockets
    assert {n.split(":", 1)[0] for n in in_use} <= {"api", "svc", "ingress", "egress", "app"}, in_use
    for name, port in in_use.items():
        sockets = {s for s in listening if s.endswith(f":{port}")}
        addresses = {s[len("tcp://"):].rsplit(":", 1)[0] for s in sockets}
        # gRPC binds 127.0.0.1 through a dual-stack socket: ::ffff:127.0.0.1 is the same address
        assert addresses <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, f"{name} listens on {sockets}"


def test_control_xds_and_every_envoy_admin_are_owner_only_unix_sockets(lab, host):
    import os
    lab.apply("manifests/walkthrough/")
    st = lab.status()
    socks = lab.client.sockets
    assert st["endpoints"]["control"] == str(socks.api) and st["endpoints"]["xds"] == f"unix:{socks.xds}"
    envoy_pods = [p for p in lab.pods() if p["proxy"]]
    paths = [socks.api, socks.xds] + [socks.admin(p["namespace"], p["name"]) for p in envoy_pods]
    assert len(paths) >= 5
    for path in paths:
        f = host.file(str(path))
        assert f.exists and stat.S_ISSOCK(os.stat(path).st_mode) and f.mode == 0o600, (path, oct(f.mode))
        assert f.user == host.user().name
    d = os.stat(socks.dir)
    assert stat.S_IMODE(d.st_mode) == 0o700 and d.st_uid == os.getuid()
    # the admin sockets answer (readiness, config dump) for their own Envoy
    for p in envoy_pods:
        assert lab.admin(p["name"], "/ready").text.strip() == "LIVE"
    assert "pods" in st and all("admin_port" not in p for p in st["pods"])


def test_the_admin_socket_of_a_pod_that_goes_away_goes_with_it(lab):
    lab.apply("manifests/walkthrough/")
    pod = next(p for p in lab.pods("appmesh-demo") if p["owner"] == "review-service")
    sock = lab.client.sockets.admin(pod["namespace"], pod["name"])
    others = [lab.client.sockets.admin(p["namespace"], p["name"]) for p in lab.pods("appmesh-demo")
              if p["proxy"] and p["name"] != pod["name"]]
    assert sock.exists() and all(o.exists() for o in others)
    lab.delete_resource("Deployment", "review-service", "appmesh-demo")

    def gone():
        assert not sock.exists(), sock
    lab.eventually(gone, timeout=15, what=f"{sock.name} removed")
    assert all(o.exists() for o in others)
    lab.apply("manifests/walkthrough/")  # back as the other tests expect it
    assert lab.client.sockets.admin("appmesh-demo", next(
        p["name"] for p in lab.pods("appmesh-demo") if p["owner"] == "review-service")).exists()


def test_envoy_and_app_processes_run_for_every_pod(lab, host):
    """Every container the lab reports is a live process of this host: each pod's Envoy an `envoy`
    of this lab home, each app container the sample app; and no other Envoy of this home runs.
    The lab's pods and the host's processes are read together until they agree: a pod started
    or replaced just before (the test before this one replaces one) starts its processes after
    the apply has returned, and an Envoy of a pod that went away may still be exiting."""
    lab.apply("manifests/walkthrough/")   # the pods this test reads, whatever ran before it
    home = str(lab.client.paths.home)

    def agree():
        pods = lab.pods()
        containers = [(pod["name"], c) for pod in pods for c in pod["containers"]]
        assert pods and all(c["state"] == "Running" and c.get("pid") for _, c in containers), containers
        envoys = {p.pid for p in host.process.filter(comm="envoy") if home in p.args}
        assert envoys == {c["pid"] for _, c in containers if c["name"] == "envoy"}, (envoys, containers)
        apps = [(name, c) for name, c in containers if c["name"] != "envoy"]
        assert len(apps) >= 2, apps   # the walkthrough's product and review services
        for name, c in apps:
            found = host.process.filter(pid=c["pid"])
            assert found and "lab.apps.sample" in found[0].args, (name, c, found and found[0].args)
        return apps
    lab.eventually(agree, timeout=30, what="the lab's pods and this host's processes agreeing")


def test_state_is_readable_by_the_owner_only(lab, host):
    home = host.file(str(lab.client.paths.home))
    assert home.is_directory and home.mode & 0o077 == 0, oct(home.mode)
    certs = lab.client.paths.home / "certs"
    for key in certs.rglob("*.key") if certs.is_dir() else []:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_down_leaves_no_process_and_no_listening_socket(lab, host):
    from lab.runtime.ports import holder_of
    ports = _lab_ports(lab)
    pids = [c["pid"] for p in lab.pods() for c in p["containers"] if c.get("pid")] + [lab.status()["daemon"]["pid"]]
    lab.down()
    try:
        deadline = time.time() + 5
        while time.time() < deadline and any(host.process.filter(pid=pid) for pid in pids):
            time.sleep(0.05)
        assert not [pid for pid in pids if host.process.filter(pid=pid)]
        listening = _listening(host)
        still = [p for p in ports.values() if any(s.endswith(f":{p}") for s in listening)]
        # a port the lab released may already serve someone else on a busy machine: only the
        # lab's own processes must be gone from it
        holders = {p: holder_of(p) for p in still}
        assert not [p for p, who in holders.items() if who and int(who.split()[1]) in pids], holders
        assert not [p for p in host.process.filter(comm="envoy") if str(lab.client.paths.home) in p.args]
        socks = lab.client.sockets
        assert not socks.api.exists() and not socks.xds.exists() and not list(socks.dir.glob("admin.*.sock"))
    finally:
        lab.up()  # the module's fixture stops it again at the end
