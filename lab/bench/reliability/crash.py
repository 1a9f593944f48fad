"""Scenario crash: SIGKILL of the daemon during applies; the store holds all of an apply or none."""
from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from ...runtime.supervisor import pid_alive
from .common import APPMESH, Lab, Sizes, _reap, _say, check, sizes


CRASH_NS = "crash"


def _crash_base() -> str:
    return f"""apiVersion: v1
kind: Namespace
metadata:
  name: {CRASH_NS}
  labels: {{mesh: crash-mesh, gateway: crash-gw}}
---
apiVersion: {APPMESH}
kind: Mesh
metadata: {{name: crash-mesh}}
spec:
  namespaceSelector: {{matchLabels: {{mesh: crash-mesh}}}}
---
apiVersion: {APPMESH}
kind: VirtualGateway
metadata: {{name: crash-gw, namespace: {CRASH_NS}}}
spec:
  namespaceSelector: {{matchLabels: {{gateway: crash-gw}}}}
  podSelector: {{matchLabels: {{app: crash-gw}}}}
  listeners: [{{portMapping: {{port: 8088, protocol: http}}}}]
"""


def _crash_batch(label: str, n: int) -> tuple[str, list]:
    """n documents (a quarter virtual nodes, a quarter virtual services, half gateway routes), all
    labelled trial=<label>; returns the text and their keys."""
    q = max(1, n // 4)
    docs, keys = [], []
    for j in range(q):
        docs.append(f"""apiVersion: {APPMESH}
kind: VirtualNode
metadata: {{name: crash-vn-{j}, namespace: {CRASH_NS}, labels: {{trial: "{label}"}}}}
spec:
  podSelector: {{matchLabels: {{app: crash-vn-{j}}}}}
  listeners: [{{portMapping: {{port: 8080, protocol: http}}}}]
  serviceDiscovery: {{dns: {{hostname: crash-vn-{j}.{CRASH_NS}.svc.cluster.local}}}}
""")
        keys.append(("VirtualNode", CRASH_NS, f"crash-vn-{j}"))
    for j in range(q):
        docs.append(f"""apiVersion: {APPMESH}
kind: VirtualService
metadata: {{name: crash-vs-{j}, namespace: {CRASH_NS}, labels: {{trial: "{label}"}}}}
spec:
  awsName: crash-vs-{j}.{CRASH_NS}.svc.cluster.local
  provider: {{virtualNode: {{virtualNodeRef: {{name: crash-vn-{j}}}}}}}
""")
        keys.append(("VirtualService", CRASH_NS, f"crash-vs-{j}"))
    for j in range(n - 2 * q):
        docs.append(f"""apiVersion: {APPMESH}
kind: GatewayRoute
metadata: {{name: crash-gr-{j}, namespace: {CRASH_NS}, labels: {{trial: "{label}"}}}}
spec:
  httpRoute:
    match: {{prefix: /crash-{j:03d}-{label}}}
    action: {{target: {{virtualService: {{virtualServiceRef: {{name: crash-vs-{j % q}}}}}}}}}
""")
        keys.append(("GatewayRoute", CRASH_NS, f"crash-gr-{j}"))
    return "---\n".join(docs), keys


def _in_batch(kind: str, name: str) -> bool:
    """A record of the batch (_crash_batch), not of the base (_crash_base)."""
    return kind in ("VirtualNode", "VirtualService", "GatewayRoute") and \
        name.startswith(("crash-vn-", "crash-vs-", "crash-gr-"))


def _batch_on_disk(db: Path) -> tuple[str, Counter]:
    """With the daemon dead: PRAGMA integrity_check and the trial labels of the batch's records."""
    from ...store import Store
    store = Store(db)
    try:
        integrity = store.integrity_check()
        labels = Counter(((r.doc.get("metadata") or {}).get("labels") or {}).get("trial")
                         for r in store.list(namespace=CRASH_NS) if _in_batch(r.kind, r.name))
    finally:
        store.close()
    return integrity, labels


def scenario_crash(quick: bool = False, out=sys.stdout, sz: Sizes | None = None) -> dict:
    from ...runtime.client import LabError
    sz = sz or sizes(quick)
    t_start = time.monotonic()
    rng = random.Random(1234)
    n = sz.crash_docs
    _say(out, f"reliability crash: {sz.crash_trials} trials, each an apply of {n} documents with the daemon "
              "SIGKILLed at a random point, then integrity and all-or-nothing checked")
    res: dict = {"scenario": "crash", "trials": sz.crash_trials, "documents": n}
    outcomes, integrity_bad, answered, trials = Counter(), 0, 0, []
    with Lab("crash") as lab:
        t, c = lab.t, lab.t.client
        t.apply_text(_crash_base(), name="crash-base.yaml", wait=False)
        db = lab.home / "state.db"
        _, keys = _crash_batch("calibrate", n)
        # how long an apply of the batch takes (creating, then changing every document)
        durations = []
        for label in ("c0", "c1"):
            t0 = time.monotonic()
            r = c.call("POST", "/v1/apply", {"texts": [["batch.yaml", _crash_batch(label, n)[0]]]}, ok=(200, 422))
            assert not r.get("rejected"), r["problems"][:3]
            durations.append(time.monotonic() - t0)
        apply_s = max(durations)
        for trial in range(sz.crash_trials):
            label = f"t{trial}"
            creating = trial % 2 == 0
            if creating:  # the batch does not exist: all = every document created, none = none of them
                c.call("POST", "/v1/delete", {"keys": [list(k) for k in keys]})
                prev = None
            else:  # the batch exists with label pre-<trial>: all = every document changed, none = none
                prev = f"pre{trial}"
                r = c.call("POST", "/v1/apply", {"texts": [["batch.yaml", _crash_batch(prev, n)[0]]]}, ok=(200, 422))
                assert not r.get("rejected")
            text = _crash_batch(label, n)[0]
            pid = lab.daemon_pid
            lab.remember()
            delay = rng.uniform(0, apply_s * 1.1)
            timer = threading.Timer(delay, lambda p=pid: os.kill(p, signal.SIGKILL))
            t0 = time.monotonic()
            timer.start()
            try:
                c.call("POST", "/v1/apply", {"texts": [["batch.yaml", text]]}, timeout=120, ok=(200, 422))
                got_answer = True
            except LabError:
                got_answer = False
            timer.join()
            deadline = time.monotonic() + 5
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            _reap(pid)
            answered += got_answer
            integrity, labels = _batch_on_disk(db)
            integrity_bad += integrity != "ok"
            if creating:
                outcome = "none" if not labels else ("all" if labels == Counter({label: n}) else "partial")
            else:
                outcome = "none" if labels == Counter({prev: n}) else ("all" if labels == Counter({label: n})
                                                                       else "partial")
            outcomes[outcome] += 1
            c.paths.daemon_info.unlink(missing_ok=True)
            t.up()
            # the restarted daemon sees what is on disk
            items = c.call("GET", f"/v1/resources?namespace={CRASH_NS}")["items"]
            seen = Counter(((i["doc"].get("metadata") or {}).get("labels") or {}).get("trial")
                           for i in items if _in_batch(i["kind"], i["name"]))
            trials.append({"trial": trial, "creating": creating, "kill_after_s": round(delay, 3),
                           "answered_before_kill": got_answer, "outcome": outcome, "integrity": integrity,
                           "daemon_agrees": seen == labels})
        lab.remember()
    disagree = sum(1 for x in trials if not x["daemon_agrees"])
    res.update(apply_s=round(apply_s, 3), outcomes=dict(outcomes), integrity_not_ok=integrity_bad,
               answered_before_kill=answered, daemon_disagrees=disagree, leftover_processes=len(lab.leftovers),
               trials_detail=trials if not quick else trials[:10])
    _say(out, f"  an apply of {n} documents takes {apply_s:.2f} s; kills uniformly in [0, {apply_s * 1.1:.2f}] s")
    _say(out, f"  outcomes: {dict(outcomes)}; integrity_check not ok: {integrity_bad}; answered before the kill: "
              f"{answered}; restarted daemon disagreeing with the disk: {disagree}")
    res["checks"] = [
        check("partial applies after a SIGKILL", outcomes.get("partial", 0), "0", outcomes.get("partial", 0) == 0),
        check("PRAGMA integrity_check not ok", integrity_bad, "0", integrity_bad == 0),
        check("restarted daemon serves what is on disk", disagree, "0 differ", disagree == 0),
        check("trials: all / none", f"{outcomes.get('all', 0)} / {outcomes.get('none', 0)}", "reported", None,
              "both sides of the commit were hit" if outcomes.get("all") and outcomes.get("none") else
              "the kills all landed on one side of the commit"),
        check("processes left behind after teardown", len(lab.leftovers), "0", not lab.leftovers),
    ]
    res["seconds"] = round(time.monotonic() - t_start, 1)
    return res
