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
            ingress): unprivileged, on a loopback port, its config in a temporary directory, one
            worker (as many as each lab Envoy has worker threads), keep-alive to the upstream
Load: `wrk` (Debian's package; scripts/install-bench-tools.sh installs it and nginx) with one
thread and a fixed number of keep-alive connections for a fixed duration, after a warm-up on the
same path; without wrk, the kit's asyncio client below does the same job (closed loop), and the
record says which tool ran. Every request is `GET /r0/`.
Reported per path: requests/s, p50 and p99 latency, non-2xx answers and socket errors, the
ratios to the direct path, and CPU time per request of each process on the path (utime + stime
from /proc/<pid>/stat, before and after the measured run), which is steadier than wall-clock
ratios on a few shared cores; and each Envoy's worker threads and CPU pinning (its
--concurrency, its threads named wrk:worker_*, Cpus_allowed_list from /proc/<pid>/status).
With --rounds > 1 the paths are run in turn that many times (alternating order) and the median
of each figure is kept.
Targets, ratios within the run: the gateway path's throughput >= nginx's, and its added p50
<= nginx's added p50 + 0.3 ms (both proxies in front of the same upstream).
"""
from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import manifests
from .common import machine, percentile, scratch_lab, table
from .upstream import NGINX_MAIN

NS = "bench"
PATH = "/r0/"
HEADERS = {"Accept": "text/plain"}
CONNECTIONS = 8
DURATION_S, QUICK_DURATION_S = 10.0, 3.0
WARMUP_S, QUICK_WARMUP_S = 2.0, 1.0
ROUNDS, QUICK_ROUNDS = 2, 1
TARGET_P50_SLACK_MS = 0.3  # the gateway path's added p50 may exceed nginx's by this much
PATHS = ("direct", "sidecar", "gateway", "nginx")
FIELDS = ("bench", "quick", "load", "upstream", "envoys", "paths", "target", "met", "notes", "machine")
PATH_FIELDS = ("name", "port", "rps", "p50_ms", "p99_ms", "requests", "non_2xx", "errors", "rps_ratio",
               "added_p50_ms", "added_p99_ms", "rounds", "cpu_us_per_request")
# which processes serve each path (their CPU per request is reported)
ON_PATH = {"direct": ("upstream",), "sidecar": ("sidecar", "upstream"),
           "gateway": ("gateway", "sidecar", "upstream"), "nginx": ("nginx", "upstream")}


# ---- load generators ---------------------------------------------------------------

def wrk_path() -> str | None:
    return shutil.which("wrk")


def nginx_path() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


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


# ---- nginx -------------------------------------------------------------------------

NGINX_CONF = NGINX_MAIN + """\
    upstream app {{
        server 127.0.0.1:{app};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


class Nginx:
    """nginx in the foreground, unprivileged (as `nobody` when this process is root), on
    127.0.0.1:<port>, with its config, pid, logs and temp files in its own directory."""

    def __init__(self, app_port: int, workdir: Path):
        from ..runtime.envoy import free_port
        self.port = free_port()
        self.dir = workdir
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "nginx.conf").write_text(NGINX_CONF.format(d=workdir, connections=1024, app=app_port, port=self.port))

    def __enter__(self):
        kwargs: dict = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for p in [self.dir, *self.dir.rglob("*")]:
                os.chown(p, nobody.pw_uid, nobody.pw_gid)
            os.chmod(self.dir, 0o755)
            for parent in self.dir.parents:  # nobody must reach its directory (mkdtemp makes it 0700)
                if str(parent) == tempfile.gettempdir():
                    break
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
            kwargs = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        self.proc = subprocess.Popen([nginx_path(), "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
                                      "-e", str(self.dir / "error.log"), "-g", "daemon off;"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "stderr.log", "w"), **kwargs)
        from ..targets.base import TargetError
        from ..targets.base import request
        deadline = time.time() + 10
        while True:
            try:
                request("127.0.0.1", self.port, "GET", "/ping", None, None, 1)
                return self
            except TargetError:
                if self.proc.poll() is not None or time.time() > deadline:
                    log = (self.dir / "error.log")
                    self.__exit__()
                    raise RuntimeError("nginx did not start: " + (log.read_text()[-2000:] if log.exists() else "")
                                       + (self.dir / "stderr.log").read_text()[-2000:])
                time.sleep(0.05)

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: fast shutdown of master and worker
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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


def _cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                continue
    return out


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


def run(quick: bool = False, duration: float | None = None, warmup: float | None = None,
        connections: int = CONNECTIONS, rounds: int | None = None, tool: str = "auto", out=sys.stdout) -> dict:
    from ..runtime.client import LabError
    from ..runtime.envoy import EnvoyNotFound, find_envoy
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        raise LabError(f"bench dataplane needs Envoy: {exc}") from exc
    duration = duration if duration is not None else (QUICK_DURATION_S if quick else DURATION_S)
    warmup = warmup if warmup is not None else (QUICK_WARMUP_S if quick else WARMUP_S)
    rounds = rounds or (QUICK_ROUNDS if quick else ROUNDS)
    if tool == "auto":
        tool = "wrk" if wrk_path() else "asyncio"
    if tool == "wrk" and not wrk_path():
        raise LabError("wrk is not installed (scripts/install-bench-tools.sh installs it); use tool='asyncio'")
    load = run_wrk if tool == "wrk" else run_asyncio
    if tool == "wrk":
        duration = float(max(1, round(duration)))  # wrk takes whole seconds
        warmup = float(round(warmup)) if warmup >= 0.5 else 0.0
    notes = []
    if tool != "wrk":
        notes.append("wrk is not installed: the kit's asyncio client generated the load (a Python client; "
                     "its requests/s are a floor)")
    if not nginx_path():
        notes.append("nginx is not installed (scripts/install-bench-tools.sh installs it): no nginx row")
    samples: dict = {p: [] for p in PATHS}
    ports: dict = {}
    envoys: dict = {}
    with scratch_lab("appmesh-bench-dataplane-", NS) as (target, scratch):
        target.apply_text(manifests.text(upstream_docs(scratch / "upstream")), name="<dataplane>", wait=False)

        def routed():
            assert target.curl(PATH, quiet=True, timeout=2).status == 200
        target.eventually(routed, timeout=60, interval=0.05, what=f"the gateway routing {PATH} to the upstream")
        ports, pids = _ports(target)
        envoys = {k: envoy_threads(pids[k]) for k in ("gateway", "sidecar")}
        nginx = Nginx(ports["direct"], scratch / "nginx") if nginx_path() else None
        try:
            if nginx is not None:
                nginx.__enter__()
                ports["nginx"] = nginx.port
                pids["nginx"] = nginx.proc.pid
            order = [p for p in PATHS if p in ports]
            for r in range(rounds):
                for name in (order if r % 2 == 0 else order[::-1]):
                    procs = {k: [pids[k]] + (_children(pids[k]) if k == "nginx" else []) for k in ON_PATH[name]}
                    samples[name].append(_measure(load, ports[name], connections, duration, warmup, procs))
        finally:
            if nginx is not None:
                nginx.__exit__()
    paths = []
    for name in PATHS:
        if not samples[name]:
            continue
        rec = {"name": name, "port": ports[name], "rounds": len(samples[name])}
        for k in ("rps", "p50_ms", "p99_ms"):
            rec[k] = round(statistics.median(s[k] for s in samples[name]), 3)
        for k in ("requests", "non_2xx", "errors"):
            rec[k] = sum(s[k] for s in samples[name])
        rec["cpu_us_per_request"] = {k: round(statistics.median(s["cpu_us_per_request"][k] or 0
                                                                for s in samples[name]), 1) for k in ON_PATH[name]}
        rec["proxy_cpu_us_per_request"] = round(sum(v for k, v in rec["cpu_us_per_request"].items()
                                                    if k != "upstream"), 1)
        paths.append(rec)
    direct = paths[0]
    for rec in paths:
        rec["rps_ratio"] = round(rec["rps"] / direct["rps"], 3) if direct["rps"] else None
        rec["added_p50_ms"] = round(rec["p50_ms"] - direct["p50_ms"], 3)
        rec["added_p99_ms"] = round(rec["p99_ms"] - direct["p99_ms"], 3)
    by = {p["name"]: p for p in paths}
    gw, ngx = by["gateway"], by.get("nginx")
    met = {"gateway_rps_at_least_nginx": None if ngx is None else gw["rps"] >= ngx["rps"],
           "gateway_added_p50_within_nginx": None if ngx is None
           else gw["added_p50_ms"] <= ngx["added_p50_ms"] + TARGET_P50_SLACK_MS}
    if any(p["non_2xx"] or p["errors"] for p in paths):
        notes.append("some requests failed: " + ", ".join(f"{p['name']}: {p['non_2xx']} non-2xx, {p['errors']} errors"
                                                          for p in paths if p["non_2xx"] or p["errors"]))
    m = machine()
    upstream = "nginx static answer (one process)" if nginx_path() else "Envoy direct_response (one worker)"
    print(f"bench dataplane: GET {PATH} with {tool}, {connections} keep-alive connections, {duration:g} s per path "
          f"after {warmup:g} s warm-up, {rounds} round(s); upstream: {upstream}; {m['cores']} cores shared by the "
          f"load generator, the proxies and the upstream; envoy {m['envoy']}", file=out)
    for k, e in envoys.items():
        print(f"  {k} Envoy: --concurrency {e.get('concurrency')}, {e.get('worker_threads')} worker thread(s), "
              f"{e.get('threads')} threads in all, CPUs allowed {e.get('cpus_allowed')} "
              f"({'pinned' if e.get('pinned') else 'not pinned'})", file=out)
    rows = [["path", "requests/s", "x direct", "p50 ms", "+p50 ms", "p99 ms", "+p99 ms", "proxy CPU us/req",
             "upstream CPU us/req", "non-2xx", "errors"]]
    for p in paths:
        rows.append([p["name"], f"{p['rps']:.0f}", f"{p['rps_ratio']:.2f}", f"{p['p50_ms']:.2f}",
                     f"{p['added_p50_ms']:+.2f}", f"{p['p99_ms']:.2f}", f"{p['added_p99_ms']:+.2f}",
                     f"{p['proxy_cpu_us_per_request']:.0f}", f"{p['cpu_us_per_request']['upstream']:.0f}",
                     p["non_2xx"], p["errors"]])
    table(rows, out)
    if ngx is None:
        print("  targets: not judged (no nginx row to compare with)", file=out)
    else:
        print(f"  target: gateway path throughput >= nginx reverse proxy's: {gw['rps']:.0f} vs {ngx['rps']:.0f} "
              f"req/s ({gw['rps'] / ngx['rps']:.2f}x) {_met(met['gateway_rps_at_least_nginx'])}", file=out)
        print(f"  target: gateway path added p50 <= nginx's + {TARGET_P50_SLACK_MS:g} ms: "
              f"{gw['added_p50_ms']:+.2f} vs {ngx['added_p50_ms']:+.2f} ms "
              f"{_met(met['gateway_added_p50_within_nginx'])}", file=out)
    for n in notes:
        print(f"  note: {n}", file=out)
    record = {"bench": "dataplane", "quick": quick,
              "load": {"tool": tool, "connections": connections, "duration_s": duration, "warmup_s": warmup,
                       "rounds": rounds, "path": PATH, "headers": HEADERS},
              "upstream": upstream, "envoys": envoys,
              "paths": paths, "target": {"rps_vs_nginx_min": 1.0, "added_p50_slack_vs_nginx_ms": TARGET_P50_SLACK_MS},
              "met": met, "notes": notes, "machine": m}
    print(json.dumps(record), file=out, flush=True)
    return record
