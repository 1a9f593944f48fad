"""`appmesh-lab bench dataplane`: what the proxies cost on the request path.

The same load, one path after the other in one run, against one upstream that is not the
bottleneck: a static one-line answer from nginx (`master_process off`, one process) or, without
nginx, from an Envoy `direct_response` (lab/bench/upstream.py), run as the pod's app on a local lab:
  direct    the upstream's own port
  sidecar   the upstream through its sidecar Envoy (the sidecar's ingress listener)
  gateway   the full path: gateway Envoy -> sidecar Envoy -> upstream (gateway route /r0/); inside
            the gateway Envoy the gateway route's stage hands the request to the virtual-service
            stage, an internal listener, in memory (no TCP hop)
  nginx     nginx as a reverse proxy to the same upstream (what a user might pick for plain
            ingress), one worker (as many as each lab Envoy has worker threads), keep-alive to it
The floors, in the same run and in front of the same upstream (lab/bench/proxies.py):
  envoy         a bare Envoy: one listener, one route, one static cluster, no access log, no
                admin interface, --concurrency 1: the cheapest Envoy hop there is
  envoy-2stage  a bare Envoy whose route hands the request to a second stage on an internal
                listener (in memory): the lab's gateway Envoy's shape (App Mesh's two routing
                stages: the gateway route, then the virtual service's routing), nothing more
  envoy-envoy   two bare Envoys in a row, and
  nginx-nginx   two nginx in a row: the gateway path's shape (two proxy hops)
Load: `wrk` (Debian's package; scripts/install-bench-tools.sh installs it and nginx) with one
thread and a fixed number of keep-alive connections for a fixed duration, after a warm-up on the
same path; without wrk, the kit's asyncio client below does the same job (closed loop), and the
record says which tool ran. Every request is `GET /r0/`.
Reported per path: requests/s, p50 and p99 latency, non-2xx answers and socket errors, the
ratios to the direct path, and CPU time per request of each process on the path (its CPU-time
clock, all threads, in nanoseconds, before and after the measured run), which is steadier than wall-clock
ratios on a few shared cores; and each Envoy's worker threads and CPU pinning (its
--concurrency, its threads named wrk:worker_*, Cpus_allowed_list from /proc/<pid>/status).
After each loaded run the same path gets a light load: one connection, one request at a time,
far below every path's capacity. At 8 closed-loop connections on 2 cores a p50 is mostly queueing
(about connections / requests per second), so what a hop adds to a request's latency is read from
the light load; both are reported.
With --rounds > 1 the paths are run in turn that many times (alternating order) and the median
of each figure is kept.
Targets, ratios within the run, as the issue writes them (the gateway path against one nginx):
the gateway path's throughput >= nginx's (loaded), and its added p50 <= nginx's added p50 + 0.3 ms
(light load). Next to them: the two-hop comparisons, and the CPU floor (a bare Envoy hop x 2
against one nginx hop), which says whether the throughput target can be met on this machine.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from . import manifests
from .common import machine, percentile, scratch_lab, table
from .proxies import BareEnvoy, Nginx, children, nginx_path

NS = "bench"
PATH = "/r0/"
HEADERS = {"Accept": "text/plain"}
CONNECTIONS = 8
LIGHT_CONNECTIONS = 1  # the light load: one request at a time, far below every path's capacity
DURATION_S, QUICK_DURATION_S = 10.0, 3.0
LIGHT_DURATION_S, QUICK_LIGHT_DURATION_S = 3.0, 1.0
WARMUP_S, QUICK_WARMUP_S = 2.0, 1.0
ROUNDS, QUICK_ROUNDS = 2, 1
TARGET_P50_SLACK_MS = 0.3  # the gateway path's added p50 may exceed nginx's by this much
# the lab's paths, then the floors measured in the same run: a bare Envoy (the cheapest Envoy hop),
# a bare Envoy with two routing stages joined by an internal listener (the gateway Envoy's shape),
# two bare Envoys in a row, two nginx in a row (the gateway path's shape: two proxy hops)
PATHS = ("direct", "sidecar", "gateway", "nginx", "envoy", "envoy-2stage", "envoy-envoy", "nginx-nginx")
FIELDS = ("bench", "quick", "load", "upstream", "envoys", "paths", "target", "met", "floors", "notes", "machine")
PATH_FIELDS = ("name", "port", "rps", "p50_ms", "p99_ms", "requests", "non_2xx", "errors", "rps_ratio",
               "added_p50_ms", "added_p99_ms", "rounds", "cpu_us_per_request", "light")
LIGHT_FIELDS = ("connections", "rps", "p50_ms", "p99_ms", "added_p50_ms", "added_p99_ms", "requests", "non_2xx",
                "errors", "cpu_us_per_request", "proxy_cpu_us_per_request")
# which processes serve each path (their CPU per request is reported); "envoy2" and "nginx2" are
# the first hop of a two-hop row, in front of "envoy" and "nginx"
ON_PATH = {"direct": ("upstream",), "sidecar": ("sidecar", "upstream"),
           "gateway": ("gateway", "sidecar", "upstream"), "nginx": ("nginx", "upstream"),
           "envoy": ("envoy", "upstream"), "envoy-2stage": ("envoy-2stage", "upstream"),
           "envoy-envoy": ("envoy2", "envoy", "upstream"),
           "nginx-nginx": ("nginx2", "nginx", "upstream")}


# ---- load generators ---------------------------------------------------------------

def wrk_path() -> str | None:
    return shutil.which("wrk")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    num, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()
    return float(num) * _UNITS[unit]


def parse_wrk(text: str) -> dict:
    """requests/s, p50/p99 (ms), request count, non-2xx and socket errors from `wrk --latency`."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    lat = {int(p): _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", text, re.M)}
    total = re.search(r"(\d+) requests in", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if not rps or 50 not in lat or 99 not in lat or not total:
        raise RuntimeError(f"cannot read wrk's output:\n{text}")
    return {"rps": float(rps.group(1)), "p50_ms": lat[50], "p99_ms": lat[99], "requests": int(total.group(1)),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": sum(int(x) for x in sock.groups()) if sock else 0}


def run_wrk(port: int, connections: int, duration: float, path: str = PATH) -> dict:
    argv = [wrk_path(), "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
            *[x for k, v in HEADERS.items() for x in ("-H", f"{k}: {v}")], f"http://127.0.0.1:{port}{path}"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    return parse_wrk(p.stdout)


async def _connection(port: int, path: str, deadline: float, latencies: list, counts: dict) -> None:
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items()) + "\r\n").encode()
    reader = writer = None
    try:
        while time.perf_counter() < deadline:
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    counts["errors"] += 1
                    await asyncio.sleep(0.01)
                    continue
            t0 = time.perf_counter()
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if length is None:
                    raise ValueError("an answer without Content-Length")
                await reader.readexactly(int(length.group(1)))
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
                counts["errors"] += 1
                writer.close()
                reader = writer = None
                continue
            latencies.append(time.perf_counter() - t0)
            if not 200 <= status < 400:
                counts["non_2xx"] += 1
            if re.search(rb"(?im)^connection:\s*close", head):
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


def run_asyncio(port: int, connections: int, duration: float, path: str = PATH) -> dict:
    """The kit's own closed-loop load generator: `connections` keep-alive HTTP/1.1 connections,
    each sending its next GET as soon as the previous answer arrived, for `duration` seconds.
    It is a Python client: on a small machine it saturates a core sooner than wrk does, so
    its requests/s are a floor on what the server can take."""
    latencies: list = []
    counts = {"errors": 0, "non_2xx": 0}

    async def main():
        deadline = time.perf_counter() + duration
        await asyncio.gather(*(_connection(port, path, deadline, latencies, counts) for _ in range(connections)))
    t0 = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - t0
    ms = [x * 1000 for x in latencies]
    return {"rps": round(len(ms) / elapsed, 2) if elapsed else 0.0, "p50_ms": round(percentile(ms, 50), 3),
            "p99_ms": round(percentile(ms, 99), 3), "requests": len(ms), **counts}


# ---- the lab -----------------------------------------------------------------------

def _met(ok) -> str:
    return "met" if ok else ("not judged" if ok is None else "MISSED")


def upstream_docs(workdir: Path) -> list:
    """The benchmark's mesh (one gateway route /r0/ to vn0) with lab/bench/upstream.py as vn0's app."""
    from ..apps import LOCAL_COMMAND_ANNOTATION
    docs = manifests.scale(1, NS, live=1)
    for d in docs:
        if d.get("kind") == "Deployment" and d["metadata"]["name"] == "vn0":
            tmpl = d["spec"]["template"]
            tmpl["metadata"]["annotations"] = {LOCAL_COMMAND_ANNOTATION: f"{sys.executable} -m lab.bench.upstream"}
            tmpl["spec"]["containers"][0]["env"].append({"name": "UPSTREAM_DIR", "value": str(workdir)})
    return docs


def _env_port(pid: int) -> int:
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(x.split(b"=", 1) for x in f.read().split(b"\0") if b"=" in x)
    return int(env[b"PORT"])


def _ports(target) -> tuple[dict, dict]:
    """Ports of the upstream, its sidecar's ingress listener and the gateway on the running lab,
    and the pids of the upstream and both Envoys."""
    from ..runtime.status import gateway_address
    pods = target.pods()
    pod = next(p for p in pods if p["role"] == "meshed" and p["owner"] == "vn0")
    app_pid = next(c["pid"] for c in pod["containers"] if c["name"] != "envoy")
    sidecar_pid = next(c["pid"] for c in pod["containers"] if c["name"] == "envoy")
    gw_pod = next(p for p in pods if p["role"] == "gateway")
    gateway_pid = next(c["pid"] for c in gw_pod["containers"] if c["name"] == "envoy")
    listeners = target.admin(pod["name"], "/listeners?format=json").json()["listener_statuses"]
    ingress = next(x for x in listeners if x["name"].startswith("lds_ingress"))
    return ({"direct": _env_port(app_pid), "sidecar": ingress["local_address"]["socket_address"]["port_value"],
             "gateway": gateway_address(target.client)[1]},
            {"upstream": app_pid, "sidecar": sidecar_pid, "gateway": gateway_pid})


# ---- /proc ---------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_clock(pid: int) -> int:
    """Linux's CPU-time clock of a whole process (clock_getcpuclockid(3) builds the same id:
    CPUCLOCK_SCHED of the process, in kernel/time/posix-cpu-timers.c)."""
    return ((~pid) << 3) | 2


def _cpu_s(pid: int) -> float:
    """The CPU time of a process (all its threads, the exited ones too), in seconds; 0 when it is
    gone. Read from its CPU-time clock (nanoseconds): /proc/<pid>/stat counts clock ticks (10 ms),
    so a process that used 5 ms in a short measured run on a busy machine read 0 or 10 ms."""
    try:
        return time.clock_gettime(_process_clock(pid))
    except (OSError, AttributeError, OverflowError):
        pass  # gone (EINVAL), or no such clock here: the tick count
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _group_cpu_s(pids: list[int]) -> float:
    return sum(_cpu_s(p) for p in pids)


def envoy_threads(pid: int) -> dict:
    """An Envoy's --concurrency, its worker threads and the CPUs it may run on, from /proc."""
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        conc = next((int(argv[i + 1]) for i, a in enumerate(argv[:-1]) if a == b"--concurrency"), None)
        comms = []
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                comms.append(open(f"/proc/{pid}/task/{t}/comm").read().strip())
            except OSError:
                continue
        status = open(f"/proc/{pid}/status").read()
        allowed = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.M)
    except OSError:
        return {}
    return {"concurrency": conc, "worker_threads": sum(1 for c in comms if c.startswith("wrk:worker")),
            "threads": len(comms), "cpus_allowed": allowed.group(1) if allowed else None,
            "pinned": False if allowed is None else allowed.group(1) != f"0-{(os.cpu_count() or 1) - 1}"}


def _measure(load, port: int, connections: int, duration: float, warmup: float, procs: dict) -> dict:
    """One measured run; `procs` (name -> pids) are sampled for CPU time around it."""
    if warmup > 0:
        load(port, connections, warmup)
    before = {k: _group_cpu_s(v) for k, v in procs.items()}
    out = load(port, connections, duration)
    used = {k: _group_cpu_s(v) - before[k] for k, v in procs.items()}
    out["cpu_us_per_request"] = {k: round(v * 1e6 / out["requests"], 1) if out["requests"] else None
                                 for k, v in used.items()}
    return out


def _summary(samples: list, on_path) -> dict:
    """The median of each figure over the rounds (counts summed)."""
    rec: dict = {"rounds": len(samples)}
    for k in ("rps", "p50_ms", "p99_ms"):
        rec[k] = round(statistics.median(x[k] for x in samples), 3)
    for k in ("requests", "non_2xx", "errors"):
        rec[k] = sum(x[k] for x in samples)
    rec["cpu_us_per_request"] = {k: round(statistics.median(x["cpu_us_per_request"][k] or 0 for x in samples), 1)
                                 for k in on_path}
    rec["proxy_cpu_us_per_request"] = round(sum(v for k, v in rec["cpu_us_per_request"].items()
                                                if k != "upstream"), 1)
    return rec


def _added(rec: dict, direct: dict) -> None:
    rec["rps_ratio"] = round(rec["rps"] / direct["rps"], 3) if direct["rps"] else None
    rec["added_p50_ms"] = round(rec["p50_ms"] - direct["p50_ms"], 3)
    rec["added_p99_ms"] = round(rec["p99_ms"] - direct["p99_ms"], 3)


def floors(by: dict) -> dict:
    """The two-hop comparisons next to the issue's target, and the CPU floor of an Envoy hop:
    what two bare Envoys cost per request against one nginx (the evidence of whether the
    throughput target can be met on this machine at all)."""
    out: dict = {}

    def cpu(name, proc=None):
        p = by.get(name)
        if p is None:
            return None
        return p["proxy_cpu_us_per_request"] if proc is None else p["cpu_us_per_request"].get(proc)

    def ratio(a, b, key="rps"):
        return round(by[a][key] / by[b][key], 3) if a in by and b in by and by[b][key] else None
    out["gateway_rps_vs_nginx_nginx"] = ratio("gateway", "nginx-nginx")
    out["envoy_envoy_rps_vs_nginx_nginx"] = ratio("envoy-envoy", "nginx-nginx")
    out["envoy_envoy_rps_vs_nginx"] = ratio("envoy-envoy", "nginx")
    out["envoy_hop_cpu_us"] = cpu("envoy", "envoy")
    out["nginx_hop_cpu_us"] = cpu("nginx", "nginx")
    out["two_envoy_hops_cpu_us"] = None if out["envoy_hop_cpu_us"] is None else round(2 * out["envoy_hop_cpu_us"], 1)
    out["envoy_2stage_cpu_us"] = cpu("envoy-2stage", "envoy-2stage")
    out["second_stage_cpu_us"] = (None if out["envoy_2stage_cpu_us"] is None or out["envoy_hop_cpu_us"] is None
                                  else round(out["envoy_2stage_cpu_us"] - out["envoy_hop_cpu_us"], 1))
    out["envoy_envoy_cpu_us"] = cpu("envoy-envoy")
    out["nginx_nginx_cpu_us"] = cpu("nginx-nginx")
    out["gateway_envoy_cpu_us"] = cpu("gateway", "gateway")
    out["sidecar_envoy_cpu_us"] = cpu("sidecar", "sidecar")
    # the lab's Envoys against bare Envoys of the same shape: what the lab's configuration costs
    out["gateway_vs_bare_2stage"] = (round(out["gateway_envoy_cpu_us"] / out["envoy_2stage_cpu_us"], 2)
                                     if out["gateway_envoy_cpu_us"] is not None and out["envoy_2stage_cpu_us"] else None)
    out["sidecar_vs_bare_hop"] = (round(out["sidecar_envoy_cpu_us"] / out["envoy_hop_cpu_us"], 2)
                                  if out["sidecar_envoy_cpu_us"] is not None and out["envoy_hop_cpu_us"] else None)
    two, one = out["two_envoy_hops_cpu_us"], out["nginx_hop_cpu_us"]
    # two bare Envoy hops cost more proxy CPU per request than one nginx hop: on a machine whose
    # cores are the limit, no gateway config can make the gateway path (two Envoys) as fast as nginx
    out["two_envoy_hops_exceed_nginx"] = None if two is None or not one else two > one
    return out


def run(quick: bool = False, duration: float | None = None, warmup: float | None = None,
        connections: int = CONNECTIONS, rounds: int | None = None, tool: str = "auto",
        light_duration: float | None = None, paths=None, out=sys.stdout) -> dict:
    """`paths`: only these (direct is always measured: every ratio is to it)."""
    from ..runtime.client import LabError
    from ..runtime.envoy import EnvoyNotFound, find_envoy
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        raise LabError(f"bench dataplane needs Envoy: {exc}") from exc
    unknown = set(paths or ()) - set(PATHS)
    if unknown:
        raise LabError(f"bench dataplane: unknown path(s) {', '.join(sorted(unknown))}; the paths are {', '.join(PATHS)}")
    wanted = [p for p in PATHS if p == "direct" or paths is None or p in paths]
    duration = duration if duration is not None else (QUICK_DURATION_S if quick else DURATION_S)
    warmup = warmup if warmup is not None else (QUICK_WARMUP_S if quick else WARMUP_S)
    light_duration = (light_duration if light_duration is not None
                      else min(duration, QUICK_LIGHT_DURATION_S if quick else LIGHT_DURATION_S))
    rounds = rounds or (QUICK_ROUNDS if quick else ROUNDS)
    if tool == "auto":
        tool = "wrk" if wrk_path() else "asyncio"
    if tool == "wrk" and not wrk_path():
        raise LabError("wrk is not installed (scripts/install-bench-tools.sh installs it); use tool='asyncio'")
    load = run_wrk if tool == "wrk" else run_asyncio
    if tool == "wrk":
        duration = float(max(1, round(duration)))  # wrk takes whole seconds
        light_duration = float(max(1, round(light_duration)))
        warmup = float(round(warmup)) if warmup >= 0.5 else 0.0
    notes = []
    if tool != "wrk":
        notes.append("wrk is not installed: the kit's asyncio client generated the load (a Python client; "
                     "its requests/s are a floor)")
    if not nginx_path():
        notes.append("nginx is not installed (scripts/install-bench-tools.sh installs it): no nginx rows")
        wanted = [p for p in wanted if "nginx" not in p]
    samples: dict = {p: [] for p in wanted}
    light: dict = {p: [] for p in wanted}
    ports: dict = {}
    envoys: dict = {}
    with scratch_lab("appmesh-bench-dataplane-", NS) as (target, scratch), contextlib.ExitStack() as stack:
        target.apply_text(manifests.text(upstream_docs(scratch / "upstream")), name="<dataplane>", wait=False)

        def routed():
            assert target.curl(PATH, quiet=True, timeout=2).status == 200
        target.eventually(routed, timeout=60, interval=0.05, what=f"the gateway routing {PATH} to the upstream")
        ports, pids = _ports(target)
        envoys = {k: envoy_threads(pids[k]) for k in ("gateway", "sidecar")}
        procs_of = {k: [v] for k, v in pids.items()}
        # the floors: proxies of the run only, in front of the same upstream (and of each other)
        for name, kind, first in (("nginx", Nginx, "nginx"), ("envoy", BareEnvoy, "envoy")):
            if name not in wanted and f"{name}-{name}" not in wanted:
                continue
            one = stack.enter_context(kind(ports["direct"], scratch / name, PATH))
            procs_of[name] = one.pids()
            ports[name] = one.port
            if f"{name}-{name}" in wanted:
                two = stack.enter_context(kind(one.port, scratch / f"{name}2", PATH))
                procs_of[f"{name}2"] = two.pids()
                ports[f"{name}-{name}"] = two.port
        if "envoy-2stage" in wanted:
            staged = stack.enter_context(BareEnvoy(ports["direct"], scratch / "envoy-2stage", PATH, stages=2))
            procs_of["envoy-2stage"] = staged.pids()
            ports["envoy-2stage"] = staged.port
        order = [p for p in wanted if p in ports]
        for r in range(rounds):
            for name in (order if r % 2 == 0 else order[::-1]):
                procs = {k: procs_of[k] for k in ON_PATH[name]}
                samples[name].append(_measure(load, ports[name], connections, duration, warmup, procs))
                # then one request at a time: latency without queueing (the path is warm)
                light[name].append(_measure(load, ports[name], LIGHT_CONNECTIONS, light_duration, 0, procs))
    paths_out = []
    for name in wanted:
        if not samples[name]:
            continue
        rec = {"name": name, "port": ports[name], **_summary(samples[name], ON_PATH[name])}
        rec["light"] = {"connections": LIGHT_CONNECTIONS, **_summary(light[name], ON_PATH[name])}
        del rec["light"]["rounds"]
        paths_out.append(rec)
    direct = paths_out[0]
    for rec in paths_out:
        _added(rec, direct)
        _added(rec["light"], direct["light"])
        del rec["light"]["rps_ratio"]
    by = {p["name"]: p for p in paths_out}
    gw, ngx = by.get("gateway"), by.get("nginx")
    judged = gw is not None and ngx is not None
    # the targets as written: the gateway path against one nginx; the p50 at the light
    # load (at 8 closed-loop connections on 2 cores a p50 is mostly queueing: connections / rate)
    met = {"gateway_rps_at_least_nginx": gw["rps"] >= ngx["rps"] if judged else None,
           "gateway_added_p50_within_nginx": gw["light"]["added_p50_ms"] <= ngx["light"]["added_p50_ms"]
           + TARGET_P50_SLACK_MS if judged else None}
    fl = floors(by)
    bad = [p for p in paths_out if p["non_2xx"] or p["errors"] or p["light"]["non_2xx"] or p["light"]["errors"]]
    if bad:
        notes.append("some requests failed: " + ", ".join(
            f"{p['name']}: {p['non_2xx'] + p['light']['non_2xx']} non-2xx, {p['errors'] + p['light']['errors']} errors"
            for p in bad))
    m = machine()
    upstream = "nginx static answer (one process)" if nginx_path() else "Envoy direct_response (one worker)"
    print(f"bench dataplane: GET {PATH} with {tool}, {connections} keep-alive connections ({duration:g} s per path "
          f"after {warmup:g} s warm-up), then {LIGHT_CONNECTIONS} connection ({light_duration:g} s), {rounds} round(s); "
          f"upstream: {upstream}; {m['cores']} cores shared by the load generator, the proxies and the upstream; "
          f"envoy {m['envoy']}", file=out)
    for k, e in envoys.items():
        print(f"  {k} Envoy: --concurrency {e.get('concurrency')}, {e.get('worker_threads')} worker thread(s), "
              f"{e.get('threads')} threads in all, CPUs allowed {e.get('cpus_allowed')} "
              f"({'pinned' if e.get('pinned') else 'not pinned'})", file=out)
    print(f"  loaded: {connections} connections, closed loop (a p50 here is mostly queueing)", file=out)
    table(loaded_rows(paths_out), out)
    print(f"  light: {LIGHT_CONNECTIONS} connection, one request at a time (the added latency of each hop)", file=out)
    table(light_rows(paths_out), out)
    for line in verdict_lines(by, met, fl):
        print(f"  {line}", file=out)
    for n in notes:
        print(f"  note: {n}", file=out)
    record = {"bench": "dataplane", "quick": quick,
              "load": {"tool": tool, "connections": connections, "duration_s": duration, "warmup_s": warmup,
                       "rounds": rounds, "path": PATH, "headers": HEADERS,
                       "light_connections": LIGHT_CONNECTIONS, "light_duration_s": light_duration},
              "upstream": upstream, "envoys": envoys,
              "paths": paths_out, "target": {"rps_vs_nginx_min": 1.0, "added_p50_slack_vs_nginx_ms": TARGET_P50_SLACK_MS,
                                             "added_p50_at": "light"},
              "met": met, "floors": fl, "notes": notes, "machine": m}
    print(json.dumps(record), file=out, flush=True)
    return record


def loaded_rows(paths: list) -> list:
    rows = [["path", "requests/s", "x direct", "p50 ms", "+p50 ms", "p99 ms", "+p99 ms", "proxy CPU us/req",
             "upstream CPU us/req", "non-2xx", "errors"]]
    for p in paths:
        rows.append([p["name"], f"{p['rps']:.0f}", f"{p['rps_ratio']:.2f}", f"{p['p50_ms']:.2f}",
                     f"{p['added_p50_ms']:+.2f}", f"{p['p99_ms']:.2f}", f"{p['added_p99_ms']:+.2f}",
                     f"{p['proxy_cpu_us_per_request']:.0f}", f"{p['cpu_us_per_request'].get('upstream', 0):.0f}",
                     p["non_2xx"], p["errors"]])
    return rows


def light_rows(paths: list) -> list:
    rows = [["path", "requests/s", "p50 ms", "+p50 ms", "p99 ms", "+p99 ms", "proxy CPU us/req"]]
    for p in paths:
        q = p.get("light")
        if q:
            rows.append([p["name"], f"{q['rps']:.0f}", f"{q['p50_ms']:.3f}", f"{q['added_p50_ms']:+.3f}",
                         f"{q['p99_ms']:.3f}", f"{q['added_p99_ms']:+.3f}", f"{q['proxy_cpu_us_per_request']:.0f}"])
    return rows


def verdict_lines(by: dict, met: dict, fl: dict) -> list[str]:
    """The targets as the issue writes them (the gateway path against one nginx), the two-hop
    comparisons next to them, and the CPU floor of two Envoy hops."""
    gw, ngx, nn, ee = by.get("gateway"), by.get("nginx"), by.get("nginx-nginx"), by.get("envoy-envoy")
    if gw is None or ngx is None:
        return ["targets: not judged (no " + ("gateway" if gw is None else "nginx") + " row to compare)"]
    lines = [f"target: gateway path throughput >= nginx reverse proxy's: {gw['rps']:.0f} vs {ngx['rps']:.0f} req/s "
             f"({gw['rps'] / ngx['rps']:.2f}x) {_met(met['gateway_rps_at_least_nginx'])}"]
    if nn is not None:
        lines.append(f"  two hops each: gateway path (2 Envoys) vs nginx -> nginx: {gw['rps']:.0f} vs {nn['rps']:.0f} "
                     f"req/s ({fl['gateway_rps_vs_nginx_nginx']:.2f}x)"
                     + (f"; bare Envoy -> bare Envoy {ee['rps']:.0f} req/s ({fl['envoy_envoy_rps_vs_nginx_nginx']:.2f}x)"
                        if ee is not None else ""))
    lines.append(f"target: gateway path added p50 <= nginx's + {TARGET_P50_SLACK_MS:g} ms, at the light load: "
                 f"{gw['light']['added_p50_ms']:+.3f} vs {ngx['light']['added_p50_ms']:+.3f} ms "
                 f"{_met(met['gateway_added_p50_within_nginx'])} (loaded, {gw['added_p50_ms']:+.2f} vs "
                 f"{ngx['added_p50_ms']:+.2f} ms, not judged: queueing)")
    if nn is not None:
        lines.append(f"  two hops each, light load: gateway path {gw['light']['added_p50_ms']:+.3f} ms, nginx -> nginx "
                     f"{nn['light']['added_p50_ms']:+.3f} ms"
                     + (f", bare Envoy -> bare Envoy {ee['light']['added_p50_ms']:+.3f} ms" if ee is not None else ""))
    if fl.get("envoy_hop_cpu_us") is not None and fl.get("nginx_hop_cpu_us"):
        lab = ", ".join(f"{k} Envoy {fl[f'{k}_envoy_cpu_us']:.0f}" for k in ("gateway", "sidecar")
                        if fl.get(f"{k}_envoy_cpu_us") is not None)
        lines.append(f"CPU floor per hop: bare Envoy {fl['envoy_hop_cpu_us']:.0f} us/req (x 2 = "
                     f"{fl['two_envoy_hops_cpu_us']:.0f}) vs nginx {fl['nginx_hop_cpu_us']:.0f} us/req"
                     + (f"; the lab's {lab}" if lab else ""))
        if fl.get("envoy_2stage_cpu_us") is not None:
            lines.append(f"  the gateway Envoy's shape, bare (App Mesh's two routing stages joined by an internal "
                         f"listener): {fl['envoy_2stage_cpu_us']:.0f} us/req, the second stage "
                         f"{fl['second_stage_cpu_us']:+.0f} us over one bare hop"
                         + (f"; the lab's gateway Envoy costs {fl['gateway_vs_bare_2stage']:.2f}x its bare shape"
                            if fl.get("gateway_vs_bare_2stage") is not None else "")
                         + (f", its sidecar {fl['sidecar_vs_bare_hop']:.2f}x a bare hop"
                            if fl.get("sidecar_vs_bare_hop") is not None else ""))
        if fl["two_envoy_hops_exceed_nginx"] and not met["gateway_rps_at_least_nginx"]:
            lines.append("  the throughput target is out of reach on this machine: two Envoy hops with the cheapest "
                         f"config cost {fl['two_envoy_hops_cpu_us']:.0f} us of CPU per request, more than one nginx hop "
                         f"({fl['nginx_hop_cpu_us']:.0f} us), and the cores are what limits every row")
    return lines
