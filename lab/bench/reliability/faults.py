"""Scenario faults: process faults under load (Envoy, app and daemon kills, a paused daemon, a scaled
gateway)."""
from __future__ import annotations

import os
import signal
import sys
import time

from ...runtime.supervisor import pid_alive
from .common import (
    Lab, Load, NS, ROOT, STABLE, Sizes, WALKTHROUGH, _answering, _assert, _container, _converged, _gateway,
    _inventory, _pod, _reap, _say, check, sizes)


def _kill_process(lab: Lab, load: Load, owner: str, container: str, probe: str) -> dict:
    """SIGKILL one container of a pod; measure until it runs again and the probe answers."""
    t = lab.t
    lab.remember()
    load.wait_clean()
    pod = _pod(t, owner)
    before = _container(pod, container)
    t0 = time.monotonic()
    assert t.kill(pod["name"], container), f"could not kill {pod['name']}/{container}"

    def back():
        p = next(x for x in t.pods(NS) if x["name"] == pod["name"])
        c = _container(p, container)
        assert c["restarts"] > before["restarts"] and c["state"] == "Running" and c["pid"] != before["pid"], c
        assert t.curl(probe, quiet=True, timeout=2).status == 200
    t.eventually(back, timeout=20, interval=0.02, what=f"{pod['name']}/{container} serving again")
    serving_again = time.monotonic() - t0
    load.wait_clean(0.5, timeout=20)
    time.sleep(0.3)
    w = load.window(t0, time.monotonic())
    w.update(pod=pod["name"], container=container, serving_again_s=round(serving_again, 3),
             outage_s=w["last_failure_s"])
    lab.remember()
    return w


def _daemon_fault(lab: Lab, load: Load, mode: str, seconds: float) -> dict:
    """mode: restart (SIGKILL, start at once) | pause (SIGSTOP for `seconds`) | down (SIGKILL,
    start after `seconds`). The Envoys keep serving their last configuration meanwhile."""
    t = lab.t
    lab.remember()
    load.wait_clean()
    pid = lab.daemon_pid
    t0 = time.monotonic()
    if mode == "pause":
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
    else:
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        _reap(pid)
        time.sleep(seconds)
    resumed = time.monotonic()
    if mode != "pause":
        t.client.paths.daemon_info.unlink(missing_ok=True)
        t.up()
    answering = time.monotonic() - resumed
    _converged(t, 30)
    reconnected = time.monotonic() - resumed
    time.sleep(0.5)
    w = load.window(t0, time.monotonic())
    during = load.window(t0, resumed)
    w.update(mode=mode, down_s=round(resumed - t0, 2), served_while_down=during["ok"],
             daemon_answering_s=round(answering, 3), proxies_reconnected_s=round(reconnected, 3),
             same_pid=lab.daemon_pid == pid)
    lab.remember()
    return w


def scenario_faults(quick: bool = False, out=sys.stdout, sz: Sizes | None = None) -> dict:
    sz = sz or sizes(quick)
    t_start = time.monotonic()
    _say(out, f"reliability faults: {sz.workers} keep-alive connections x {sz.rate:g} req/s on "
              f"{', '.join(STABLE)} through the gateway; one fault at a time")
    res: dict = {"scenario": "faults", "load": {"workers": sz.workers, "rate_per_worker": sz.rate}}
    faults: dict = {}
    with Lab("faults") as lab:
        t = lab.t
        t.apply(WALKTHROUGH)
        _answering(t)
        before = _inventory(t)
        host, port = _gateway(t)
        with Load(host, port, workers=sz.workers, rate=sz.rate) as load:
            faults["gateway_envoy"] = _kill_process(lab, load, "appmesh-gateway", "envoy", "/products")
            faults["sidecar_envoy"] = _kill_process(lab, load, "product-service", "envoy", "/products")
            faults["app"] = _kill_process(lab, load, "product-service", "app", "/products")
            faults["daemon_restart"] = _daemon_fault(lab, load, "restart", 0)
            faults["daemon_paused"] = _daemon_fault(lab, load, "pause", sz.pause_s)
            faults["daemon_down"] = _daemon_fault(lab, load, "down", sz.pause_s)
        res["load"].update(load.totals())
        after = _inventory(t)
        kept = after == before
        # the gateway Deployment with replicas: 2; fresh connections spread over both Envoys
        text = (ROOT / WALKTHROUGH / "09-gateway-deployment.yaml").read_text()
        assert text.count("replicas: 1") == 1
        t.apply_text(text.replace("replicas: 1", "replicas: 2"), name="09-gateway-deployment.yaml")
        _converged(t)
        t.eventually(lambda: _assert(len([p for p in t.pods(NS) if p["owner"] == "appmesh-gateway"
                                          and p["status"] == "Running"]) == 2), timeout=20,
                     what="two gateway pods running")
        _answering(t)
        with Load(host, port, workers=sz.workers, rate=sz.rate) as load2:
            time.sleep(0.5)
            faults["gateway_envoy_2_replicas"] = _kill_process(lab, load2, "appmesh-gateway", "envoy", "/products")
        lab.remember()
    res["faults"] = faults
    res["resources_kept"] = kept
    res["resources"] = len(before)
    res["leftover_processes"] = len(lab.leftovers)
    g1, g2 = faults["gateway_envoy"], faults["gateway_envoy_2_replicas"]
    names = {"gateway_envoy": "gateway Envoy SIGKILL (1 replica)", "sidecar_envoy": "sidecar Envoy SIGKILL",
             "app": "app process SIGKILL", "daemon_restart": "daemon SIGKILL + restart",
             "daemon_paused": f"daemon SIGSTOP {sz.pause_s:g} s", "daemon_down": f"daemon down {sz.pause_s:g} s",
             "gateway_envoy_2_replicas": "gateway Envoy SIGKILL (2 replicas)"}
    for k, f in faults.items():
        extra = (f"serving again {f['serving_again_s']:.2f} s" if "serving_again_s" in f else
                 f"served {f['served_while_down']} while down; proxies reconnected {f['proxies_reconnected_s']:.2f} s")
        _say(out, f"  {names[k]:<36} {f['requests']:>5} requests  failed {f['failed']:>3}"
                  f" (after one retry {f['failed_after_retry']})  outage {f['last_failure_s']:.2f} s  {extra}")
    _say(out, f"  resources kept across the faults: {kept} ({len(before)}); processes left behind: {len(lab.leftovers)}")
    checks = [
        check("failed requests while the daemon restarts", faults["daemon_restart"]["failed"], "0",
              faults["daemon_restart"]["failed"] == 0),
        check("failed requests while the daemon is paused", faults["daemon_paused"]["failed"], "0",
              faults["daemon_paused"]["failed"] == 0),
        check("failed requests while the daemon is down", faults["daemon_down"]["failed"], "0",
              faults["daemon_down"]["failed"] == 0),
        check("requests served while the daemon is down", faults["daemon_down"]["served_while_down"], "> 0",
              faults["daemon_down"]["served_while_down"] > 0),
        check("gateway Envoy killed: serving again", round(g1["serving_again_s"], 3), "< 2 s", g1["serving_again_s"] < 2),
        check("sidecar Envoy killed: serving again", round(faults["sidecar_envoy"]["serving_again_s"], 3), "< 2 s",
              faults["sidecar_envoy"]["serving_again_s"] < 2),
        check("app killed: serving again", round(faults["app"]["serving_again_s"], 3), "< 5 s",
              faults["app"]["serving_again_s"] < 5),
        check("gateway Envoy killed (1 replica): failed requests", g1["failed"], "reported", None,
              "in-flight and idle keep-alive connections of the only gateway Envoy break, and new ones are "
              "refused until it is back"),
        check("gateway Envoy killed (2 replicas): failed requests", g2["failed"], "reported", None,
              f"only the connections on the killed replica break; with one retry on a new connection "
              f"{g2['failed_after_retry']} fail (1 replica: {g1['failed_after_retry']})"),
        check("sidecar Envoy killed: failed requests", faults["sidecar_envoy"]["failed"], "reported", None,
              "requests to the service in the restart gap (the gateway retries connect failures twice)"),
        check("app killed: failed requests", faults["app"]["failed"], "reported", None,
              "requests in the app's restart gap, after the sidecar's retries"),
        check("every applied resource kept (uid, generation)", kept, "true", kept),
        check("processes left behind after teardown", len(lab.leftovers), "0", not lab.leftovers),
    ]
    res["checks"] = checks
    res["seconds"] = round(time.monotonic() - t_start, 1)
    return res
