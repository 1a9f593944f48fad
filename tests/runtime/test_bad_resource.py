"""One bad resource never takes traffic down (the walkthrough, real Envoy, the local lab).

First line: a GatewayRoute whose header name holds CR/LF is refused at apply, with file, line and
field path, and nothing changes. Second line: with the first line bypassed by the daemon's
test-only seam (APPMESH_LAB_TEST_SKIP_ENVOY_CHECKS=1), the route is stored and Envoy NACKs it;
the daemon finds it, leaves it out and marks it, and every other change keeps flowing — also
after `down`/`up` with the bad route still stored.
"""
import os
import signal
import subprocess
import threading
import sys
import time
from pathlib import Path

import pytest

from lab.targets.base import TargetError
from tests.runtime.walkthrough import BAD_HEADER_ROUTE, EXTRA_ROUTE, WALKTHROUGH, running_lab

pytestmark = pytest.mark.envoy


def eventually(check, timeout=30.0, what="the condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last is True:
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not hold within {timeout}s; last: {last!r}")


def answers(lab, path, status=200):
    def check():
        try:
            r = lab.curl(path)
        except TargetError as exc:  # the gateway is not listening yet (after `up`)
            return str(exc)
        return True if r.status == status else (r.status, r.text[:200])
    return check


def route_conditions(lab) -> dict:
    return {gr["metadata"]["name"]: gr["status"]["conditions"][0]
            for gr in lab.get("GatewayRoute", namespace="appmesh-demo") if gr.get("status", {}).get("conditions")}


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory) -> str:
    """The walkthrough, its gateway's Service on port 8088 instead of 80. A Service port below
    2768 asks the lab for the stable port 30000 + port, which every lab on the machine asks for;
    a lab that takes back its stored port at `up` checks only the other labs' claims (see
    lab/runtime/ports.py), not who listens there: while the Envoys of a lab whose daemon was
    killed (tests/security, bench reliability) still listen on 30080, this lab's gateway would
    share the port with them (SO_REUSEPORT) after down/up, and some requests would get the
    other gateway's answers (reproduced with two labs). Port 8088 gets a free port of its own,
    kept across down/up."""
    folder = tmp_path_factory.mktemp("walkthrough")
    for f in sorted(Path(WALKTHROUGH).glob("*.yaml")):
        text = f.read_text()
        if f.name == "09-gateway-deployment.yaml":
            assert "      port: 80\n      targetPort: 8088\n" in text, text
            text = text.replace("      port: 80\n      targetPort: 8088\n", "      port: 8088\n      targetPort: 8088\n")
        (folder / f.name).write_text(text)
    return str(folder)


@pytest.fixture(scope="module")
def unchecked_lab(tmp_path_factory, walkthrough):
    """A lab whose daemon skips the Envoy checks of validation (the test-only seam), walkthrough applied."""
    with running_lab(tmp_path_factory.mktemp("lab"), {"APPMESH_LAB_TEST_SKIP_ENVOY_CHECKS": "1"}) as t:
        t.apply(walkthrough)
        yield t


def test_a_route_envoy_rejects_is_left_out_and_marked_while_every_other_change_flows(unchecked_lab):
    lab = unchecked_lab
    for path in ("/products", "/reviews"):
        eventually(answers(lab, path), what=f"{path} answering")
    lab.apply_text(BAD_HEADER_ROUTE, wait=False)  # the seam lets it through validation: it is stored
    assert lab.get("GatewayRoute", "bad-header-route", namespace="appmesh-demo")

    def rejected():
        c = route_conditions(lab).get("bad-header-route") or {}
        return True if c.get("status") == "False" and c.get("reason") == "ConfigRejected" else c
    eventually(rejected, what="the bad route marked ConfigRejected")
    cond = route_conditions(lab)["bad-header-route"]
    assert "HeaderMatcher" in cond["message"] or "header" in cond["message"].lower(), cond
    lab.converge()  # the gateway ACKs its configuration again
    for path in ("/products", "/reviews"):
        assert lab.curl(path).status == 200, path
    assert lab.curl("/bad").status == 404  # not served, and not shown as served

    lab.apply_text(EXTRA_ROUTE)  # a good route applied afterwards answers
    eventually(answers(lab, "/extra"), what="/extra answering")
    lab.delete_resource("GatewayRoute", "review-gateway-route", "appmesh-demo")  # a deleted one stops
    eventually(answers(lab, "/reviews", 404), what="/reviews gone")
    lab.converge()
    conds = route_conditions(lab)
    assert conds["bad-header-route"]["status"] == "False"
    assert {n: c["status"] for n, c in conds.items() if n != "bad-header-route"} == {
        "product-gateway-route": "True", "extra-route": "True"}, conds
    events = lab.events("GatewayRoute", "bad-header-route", "appmesh-demo")
    assert any(e["reason"] == "ReconcileError" for e in events), events


def test_apply_names_the_resource_envoy_rejected_and_fails(unchecked_lab, tmp_path):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(BAD_HEADER_ROUTE)
    cli = Path(sys.executable).parent / "appmesh-lab"
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "lab.cli"]
    env = {**os.environ, "APPMESH_LAB_HOME": str(unchecked_lab.client.paths.home)}
    proc = subprocess.run(cmd + ["apply", "-f", str(manifest)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "gatewayroute/bad-header-route" in proc.stderr and "Envoy rejected" in proc.stderr, proc.stderr
    for path in ("/products", "/extra"):
        assert unchecked_lab.curl(path).status == 200, path


def test_after_down_and_up_every_good_stored_route_answers(unchecked_lab, walkthrough):
    lab = unchecked_lab
    lab.apply(walkthrough)  # the review route again
    eventually(answers(lab, "/reviews"), what="/reviews answering")
    lab.down()
    lab.up()
    for path in ("/products", "/reviews", "/extra"):
        eventually(answers(lab, path), what=f"{path} answering after up")
    lab.converge()

    def marked():
        c = route_conditions(lab)
        return True if c["bad-header-route"]["reason"] == "ConfigRejected" and all(
            v["status"] == "True" for n, v in c.items() if n != "bad-header-route") else c
    eventually(marked, what="statuses after up")
    assert lab.curl("/bad").status == 404


def test_an_access_log_in_a_missing_directory_is_written_inside_the_pod_folder(unchecked_lab, tmp_path):
    lab = unchecked_lab
    missing = tmp_path / "no-such-dir" / "gw"
    text = open("manifests/walkthrough/08-virtual-gateway.yaml").read().replace(
        "path: /dev/stdout", f"path: {missing}/access.log")
    assert str(missing) in text
    lab.apply_text(text)
    eventually(answers(lab, "/products"), what="/products answering with the new access log")
    home = lab.client.paths.home

    def logged():
        lab.curl("/products")
        found = list(home.glob(f"pods/appmesh-demo/*/access-logs{missing}/access.log"))
        return True if found and any(f.stat().st_size > 0 for f in found) else found
    eventually(logged, what="the access log written in the pod's folder")
    assert not missing.exists(), "Envoy wrote outside the lab home"


def test_a_route_is_shown_active_only_once_envoy_acked_it(unchecked_lab):
    """Statuses follow what the proxies ACKed: a good route is Active when apply (which waits)
    returns; a route Envoy rejects is never shown Active, not even between the push and the NACK."""
    lab = unchecked_lab
    good = EXTRA_ROUTE.replace("extra-route", "acked-route").replace("/extra", "/acked")
    lab.apply_text(good)
    assert (route_conditions(lab).get("acked-route") or {}).get("status") == "True", route_conditions(lab)

    bad = BAD_HEADER_ROUTE.replace("bad-header-route", "never-active-route").replace("/bad", "/never")
    seen, answer = [], {}
    sender = threading.Thread(target=lambda: answer.update(lab.try_apply(bad, is_text=True)))
    sender.start()
    deadline = time.time() + 30
    while time.time() < deadline:
        c = route_conditions(lab).get("never-active-route")
        if c:
            seen.append((c["status"], c["reason"]))
        if not sender.is_alive() and c and c["reason"] == "ConfigRejected":
            break
    sender.join()
    assert not answer.get("rejected"), answer
    assert seen and seen[-1] == ("False", "ConfigRejected"), seen[-5:]
    assert ("True", "Active") not in seen, sorted(set(seen))
    # sent and not ACKed yet, then rejected (the Pending window may be too short for a poll to see)
    assert set(seen) <= {("Unknown", "Pending"), ("False", "ConfigRejected")}, sorted(set(seen))
    lab.delete_resource("GatewayRoute", "never-active-route", "appmesh-demo")


def test_a_route_the_gateway_has_not_acked_is_pending_and_names_the_proxy(unchecked_lab):
    """While the gateway's Envoy cannot answer (stopped with SIGSTOP), a new route is sent but not
    ACKed: Unknown, reason Pending, naming the gateway; Active once the Envoy runs again and ACKs."""
    lab = unchecked_lab
    lab.converge()
    assert lab.kill("appmesh-gateway", "envoy", signal.SIGSTOP)
    try:
        lab.apply_text(EXTRA_ROUTE.replace("extra-route", "paused-route").replace("/extra", "/paused"), wait=False)
        time.sleep(1.0)  # time enough for an ACK, were the Envoy running
        c = route_conditions(lab)["paused-route"]
        assert (c["status"], c["reason"]) == ("Unknown", "Pending"), c
        assert "appmesh-gateway" in c["message"], c
        assert route_conditions(lab)["product-gateway-route"]["status"] == "True"  # unchanged: still served
    finally:
        lab.kill("appmesh-gateway", "envoy", signal.SIGCONT)

    def active():
        c = route_conditions(lab)["paused-route"]
        return True if c["status"] == "True" else c
    eventually(active, what="the route Active once the gateway ACKed it")
    assert lab.curl("/paused").status == 200
    events = [e["reason"] for e in lab.events("GatewayRoute", "paused-route", "appmesh-demo")]
    assert events.count("Active") == 1 and "ReconcileError" not in events, events
    lab.delete_resource("GatewayRoute", "paused-route", "appmesh-demo")
