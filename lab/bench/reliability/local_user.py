"""Another local user against a running lab: every way in that issue 12 lists, tried as `nobody`
(through runuser) while the owner runs the lab, and what the owner then still has.

`sweep(t)` finds the lab's surfaces as the owner sees them (the TCP ports the daemon and its
processes listen on, from /proc/net/tcp and /proc/<pid>/fd; every entry of the lab home, the
socket folder and the port-claims folder; the proxies' node ids), hands that list to a probe that
runs as the other user, and judges each attempt:

  refused      no connection, a permission error, an HTTP error status, no HTTP answer
  succeeded    the attempt did what it asked: a file read or opened for writing, a folder listed or
               written, a socket connected, a port bound, a 2xx from the App Mesh API, the daemon's
               or an Envoy admin's content (config dump, status, meshes) in an answer
  data plane   a gateway, sidecar or app port answered as it answers anyone: these ports are the
               lab's data plane, on 127.0.0.1 on purpose; what they answered is checked for
               control content, and what it did is checked on the owner's side below

Then, as the owner: the store's resources, every file of the home (logs and the store's own files
aside; the store is compared through its resources), the socket and claims folders, the lab's
processes by identity (pid, start time, command line), each Envoy's admin state (LIVE, no runtime
override), the events, the marker a local-command Deployment would have made, and the stable
routes. Both tests/security and `appmesh-lab bench reliability --scenario exposure` use it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path


OTHER = "nobody"
SURFACES = ("App Mesh API (TCP, SigV4)", "data plane (TCP on 127.0.0.1)", "daemon control socket", "xDS",
            "Envoy admin sockets", "lab home", "socket and port-claims folders", "ports bound beside the lab's")
STABLE = ("/products", "/reviews")


def unavailable() -> str | None:
    """Why the sweep cannot run here, or None."""
    if os.geteuid() != 0 or not shutil.which("runuser"):
        return "needs root and runuser (to act as another local user)"
    if _python_for_other() is None:
        return f"no Python the user {OTHER} may run"
    return None


@functools.lru_cache(maxsize=1)
def _python_for_other() -> str | None:
    for exe in (sys.executable, shutil.which("python3") or "", "/usr/bin/python3"):
        if exe and subprocess.run(["runuser", "-u", OTHER, "--", exe, "-c", "pass"], cwd="/",
                                  capture_output=True, timeout=60).returncode == 0:
            return exe
    return None


def run_as_other(code: str, payload, timeout: float = 300):
    """Run `code` (Python; it reads `plan` and prints one JSON value last) as the other user."""
    prog = "import json, sys\nplan = json.loads(sys.stdin.read())\n" + code
    proc = subprocess.run(["runuser", "-u", OTHER, "--", _python_for_other(), "-c", prog], cwd="/",
                          input=json.dumps(payload), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"the probe as {OTHER} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- what the owner sees ------------------------------------------------------------------

def descendants(pid: int) -> set:
    """`pid` and every process below it (from /proc/<pid>/stat's parent pids)."""
    parents: dict = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue  # ended meanwhile
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(d))
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in found:
            found.add(p)
            todo += parents.get(p, [])
    return found


def tcp_ports_of(pids) -> dict:
    """port -> (pid, address) of every listening TCP socket these processes hold."""
    from .exposure import _decode_addr, _socket_inodes
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A":
                listening[parts[9]] = (int(parts[1].rsplit(":", 1)[1], 16), _decode_addr(parts[1]))
    out = {}
    for pid in pids:
        for inode in _socket_inodes(pid):
            if inode in listening:
                port, addr = listening[inode]
                out[port] = (pid, addr)
    return out


def _lab_pids(t) -> tuple[int, set]:
    st = t.status()
    daemon = st["daemon"]["pid"]
    pids = descendants(daemon) | {c["pid"] for p in st["pods"] for c in p.get("containers", []) if c.get("pid")}
    return daemon, pids


def _entries(home: Path, sockets_dir: Path) -> list:
    """The lab home, the socket folder and the claims folder with everything in them; of the claims
    (one file per port, every lab of this user on the machine) only this lab's."""
    found = []
    for root in sorted({home, sockets_dir}):
        found += [root, *sorted(root.rglob("*"))]
    claims = _claims_dir()
    found.append(claims)
    mine = str(home.resolve())
    for f in sorted(claims.iterdir()):
        try:
            if f.is_file() and not f.is_symlink() and f.read_text().split(" ", 1)[-1].strip() == mine:
                found.append(f)
        except OSError:
            continue  # released meanwhile
    return list(dict.fromkeys(found))


def _claims_dir() -> Path:
    from ...runtime.sockets import user_runtime_dir
    base = os.environ.get("APPMESH_LAB_PORT_CLAIMS")
    return Path(base) if base else user_runtime_dir() / "ports"


def plan(t, marker: Path) -> dict:
    """Everything the other user will try, as the owner finds it."""
    from ...api.credentials import load_profile
    from ..manifests import text
    home = t.client.paths.home
    daemon, pids = _lab_pids(t)
    st = t.status()
    api_port = int(st["endpoints"]["appmesh_api"].rsplit(":", 1)[1])
    tcp = {port: ("appmesh-api" if pid == daemon else "data-plane") for port, (pid, _) in tcp_ports_of(pids).items()}
    socks = t.client.sockets
    entries = []
    for p in _entries(home, socks.dir):
        kind = "link" if p.is_symlink() else "socket" if p.is_socket() else "dir" if p.is_dir() else "file"
        entries.append([str(p), kind])
    deploy = text({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "intruder", "namespace": "appmesh-demo"},
                        "spec": {"selector": {"matchLabels": {"app": "intruder"}}, "template": {
                            "metadata": {"labels": {"app": "intruder"},
                                         "annotations": {"lab.appmesh.dev/local-command": f"touch {marker}"}},
                            "spec": {"containers": [{"name": "app", "image": "busybox",
                                                     "env": [{"name": "PYTHONPATH", "value": str(marker.parent)}]}]}}}})
    return {"tcp": {str(k): v for k, v in sorted(tcp.items())}, "api_port": api_port,
            "control": str(socks.api), "xds": str(socks.xds),
            "admins": sorted(str(p) for p in socks.dir.glob("admin.*.sock")),
            "entries": entries, "home": str(home), "claims": str(_claims_dir()),
            "node_ids": sorted(p["node_id"] for p in st["proxies"]),
            "access_key_id": load_profile(home).access_key_id, "deployment": deploy,
            "site": sysconfig.get_paths()["purelib"]}


# ---- what the other user does (runs as that user: standard library, and grpc if it can) ---------

PROBE = r'''
import errno, os, random, socket, time
results = []
last = [time.monotonic()]
def note(surface, target, action, outcome, detail=""):
    now = time.monotonic()
    results.append([surface, str(target), action, outcome, str(detail)[:200], round(now - last[0], 3)])
    last[0] = now

CONTROL_CONTENT = (b'"configs"', b'"proxies"', b'"meshes"', b'"daemon"', b"cluster_manager", b'"version_info"',
                   b'"server_info"', b"cds_config", b'"state": "LIVE"', b"envoy.admin")

def http(addr, method, path, headers, body=b"", timeout=5):
    s = socket.socket(socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET)
    s.settimeout(timeout)
    try:
        s.connect(addr)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(f"{method} {path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                  + body)
        data = b""
        try:
            while len(data) < 1 << 20:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        return data
    except OSError as exc:
        return exc
    finally:
        s.close()

def judge_http(surface, target, action, answer, control):
    if isinstance(answer, Exception):
        return note(surface, target, action, "refused", type(answer).__name__)
    if not answer.startswith(b"HTTP/"):
        return note(surface, target, action, "refused", "no HTTP answer")
    status = int(answer.split(b" ", 2)[1])
    leaked = [m.decode() for m in CONTROL_CONTENT if m in answer]
    if status >= 400:
        return note(surface, target, action, "refused", status)
    if control or leaked:
        return note(surface, target, action, "succeeded", f"{status} {leaked}")
    note(surface, target, action, "data plane", status)

deploy = plan["deployment"]
apply_body = json.dumps({"texts": [["intruder.yaml", deploy]]}).encode()
now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
guessed = (f"AWS4-HMAC-SHA256 Credential={plan['access_key_id']}/{now[:8]}/us-west-2/appmesh/aws4_request, "
           f"SignedHeaders=host;x-amz-date, Signature={random.getrandbits(256):064x}")
def try_port(port, role):
    port = int(port)
    surface = "App Mesh API (TCP, SigV4)" if role == "appmesh-api" else "data plane (TCP on 127.0.0.1)"
    addr = ("127.0.0.1", port)
    loop = {"Host": f"127.0.0.1:{port}"}
    requests = [
        ("create: POST /v1/apply (local-command Deployment)", "POST", "/v1/apply",
         {**loop, "Content-Type": "application/json"}, apply_body),
        ("create: text/plain POST /v1/apply, foreign Origin", "POST", "/v1/apply",
         {**loop, "Content-Type": "text/plain", "Origin": "http://evil.example"}, apply_body),
        ("create: text/plain POST /v1/apply, rebound Host", "POST", "/v1/apply",
         {"Host": f"evil.example:{port}", "Content-Type": "text/plain"}, apply_body),
        ("create: CreateMesh unsigned", "PUT", "/v20190125/meshes", {**loop, "Content-Type": "application/json"},
         b'{"meshName": "intruder"}'),
        ("create: CreateMesh, guessed signature", "PUT", "/v20190125/meshes",
         {**loop, "Content-Type": "application/json", "X-Amz-Date": now, "Authorization": guessed},
         b'{"meshName": "intruder"}'),
        ("read: ListMeshes unsigned", "GET", "/v20190125/meshes", loop, b""),
        ("read: ListMeshes, guessed signature", "GET", "/v20190125/meshes",
         {**loop, "X-Amz-Date": now, "Authorization": guessed}, b""),
        ("read: GET /v1/status", "GET", "/v1/status", loop, b""),
        ("read: GET /config_dump", "GET", "/config_dump", loop, b""),
        ("read: GET /stats", "GET", "/stats", loop, b""),
        ("change: POST /runtime_modify", "POST", "/runtime_modify?re2.max_program_size.error_level=1", loop, b""),
        ("change: POST /healthcheck/fail", "POST", "/healthcheck/fail", loop, b""),
        ("change: POST /logging?level=trace", "POST", "/logging?level=trace", loop, b""),
        ("stop: POST /quitquitquit", "POST", "/quitquitquit", loop, b""),
        ("stop: POST /v1/shutdown", "POST", "/v1/shutdown", {**loop, "Content-Type": "application/json"}, b"{}"),
    ]
    for action, method, path, headers, body in requests:
        # a data-plane port that gives no answer within 1.5 s (a listener waiting for more) refused it
        answer = http(addr, method, path, headers, body, 5 if role == "appmesh-api" else 1.5)
        judge_http(surface, port, action, answer, role == "appmesh-api")
    # a server of its own beside the lab's (SO_REUSEPORT lets a second socket of the same user bind)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        s.bind(addr)
        s.listen(1)
        note("ports bound beside the lab's", port, "bind with SO_REUSEPORT", "succeeded", "bound")
    except OSError as exc:
        note("ports bound beside the lab's", port, "bind with SO_REUSEPORT", "refused", errno.errorcode.get(exc.errno))
    finally:
        s.close()

import threading   # the ports side by side: a data-plane port that answers nothing costs its timeout once
threads = [threading.Thread(target=try_port, args=item) for item in plan["tcp"].items()]
for th in threads:
    th.start()
for th in threads:
    th.join()

# the Unix sockets: connect, and ask as the CLI and the admin would
for path, surface, requests in (
        (plan["control"], "daemon control socket",
         [("read: GET /v1/status", "GET", "/v1/status", b""),
          ("create: POST /v1/apply (local-command Deployment)", "POST", "/v1/apply", apply_body),
          ("stop: POST /v1/shutdown", "POST", "/v1/shutdown", b"{}")]),
        *[(a, "Envoy admin sockets", [("read: GET /config_dump", "GET", "/config_dump", b""),
                                      ("stop: POST /quitquitquit", "POST", "/quitquitquit", b""),
                                      ("change: POST /healthcheck/fail", "POST", "/healthcheck/fail", b"")])
          for a in plan["admins"]]):
    for action, method, p, body in requests:
        judge_http(surface, path, action, http(path, method, p, {"Host": "localhost"}, body), True)

# xDS: the socket, then a stream as a stolen node id asking for clusters and sending a forged NACK
for node in plan["node_ids"]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(plan["xds"])
        note("xDS", plan["xds"], f"connect as {node}", "succeeded", "connected")
    except OSError as exc:
        note("xDS", plan["xds"], f"connect as {node}", "refused", type(exc).__name__)
    finally:
        s.close()
try:
    sys.path[:0] = [plan["site"]]
    import grpc
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
    from envoy.config.core.v3 import base_pb2
    from google.rpc import status_pb2
except Exception as exc:  # the other user may not read the environment: the connects above stand
    grpc = None
if grpc is not None:
    CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    # the socket, and the daemon's one TCP port (the data plane's ports speak HTTP/1 to clients)
    targets = [f"unix:{plan['xds']}"] + [f"127.0.0.1:{p}" for p, role in plan["tcp"].items() if role == "appmesh-api"]
    for target in targets:
        for node in plan["node_ids"]:
            for action, req in (
                    ("read: CDS as a stolen node id", discovery_pb2.DiscoveryRequest(
                        node=base_pb2.Node(id=node, cluster="x"), type_url=CDS)),
                    ("change: forged NACK", discovery_pb2.DiscoveryRequest(
                        node=base_pb2.Node(id=node, cluster="x"), type_url=CDS, version_info="1", response_nonce="1",
                        error_detail=status_pb2.Status(code=3, message="intruder: forged NACK")))):
                ch = grpc.insecure_channel(target)
                try:
                    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch)
                    answer = next(iter(stub.StreamAggregatedResources(iter([req]), timeout=3)))
                    note("xDS", target, action, "succeeded", f"{len(answer.resources)} resources")
                except grpc.RpcError as exc:
                    note("xDS", target, action, "refused", exc.code().name)
                except StopIteration:
                    note("xDS", target, action, "refused", "stream ended")
                finally:
                    ch.close()

# every entry of the home, the socket folder and the claims folder
for path, kind in plan["entries"]:
    surface = "lab home" if path == plan["home"] or path.startswith(plan["home"] + "/") else \
        "socket and port-claims folders"
    def attempt(action, fn):
        try:
            fn()
            note(surface, path, action, "succeeded")
        except OSError as exc:
            note(surface, path, action, "refused", type(exc).__name__)
    if kind == "dir":
        attempt("read: list", lambda: os.listdir(path))
        attempt("create: a file", lambda: os.close(os.open(os.path.join(path, ".intruder"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)))
        attempt("create: plant a symlink", lambda: os.symlink("/etc/passwd", os.path.join(path, ".intruder-link")))
    elif kind == "socket":
        def connect():
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
            finally:
                s.close()
        attempt("connect", connect)
        attempt("stop: remove", lambda: os.unlink(path))
    else:
        attempt("read", lambda: open(path, "rb").read(1))
        attempt("change: open for writing", lambda: os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)))
        attempt("stop: remove", lambda: os.unlink(path))
print(json.dumps(results))
'''


# ---- what the owner still has -------------------------------------------------------------------

_VOLATILE = (".log", "state.db", "state.db-wal", "state.db-shm", "state.db-journal")


def owner_state(t) -> dict:
    """What another user must not be able to change: resources, files, processes, Envoys' state."""
    from ...runtime.procs import identify
    home = t.client.paths.home
    items = t.client.call("GET", "/v1/resources")["items"]
    rows = sorted((i["kind"], i["namespace"], i["name"], i["uid"], i["generation"], json.dumps(i["doc"], sort_keys=True))
                  for i in items)
    files = {}
    for p in _entries(home, t.client.sockets.dir):
        rel = str(p)
        if p.name.endswith(_VOLATILE) or "access-logs" in p.parts:
            continue
        st = os.lstat(p)
        digest = ""
        if p.is_file() and not p.is_symlink():
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
        # a folder's mtime moves with what the lab itself puts in it (claims, sockets): its mode,
        # owner and inode are what another user would change
        files[rel] = [st.st_mode, st.st_uid, st.st_ino, st.st_mtime_ns if not p.is_dir() else 0, digest]
    daemon, pids = _lab_pids(t)
    idents = sorted(json.dumps(i.to_dict(), sort_keys=True) for i in (identify(p) for p in pids) if i)
    envoys = {}
    for p in t.pods():
        if p["proxy"]:
            info = t.admin(p["name"], "/server_info").json()
            runtime = t.admin(p["name"], "/runtime").json()["entries"]
            envoys[p["name"]] = {"state": info["state"],
                                 "admin_layer": {k: v["layer_values"][-1] for k, v in runtime.items()
                                                 if v["layer_values"][-1]},
                                 "ready": t.admin(p["name"], "/ready").status}
    events = [e for e in t.client.call("GET", "/v1/events")["events"] if e.get("reason") == "ConfigRejected"]
    return {"resources": hashlib.sha256(json.dumps(rows).encode()).hexdigest(), "files": files,
            "processes": idents, "daemon": daemon, "envoys": envoys, "rejected_events": len(events)}


def differences(before: dict, after: dict) -> list:
    out = []
    if before["resources"] != after["resources"]:
        out.append("the stored resources changed")
    for k in sorted(set(before["files"]) | set(after["files"])):
        if before["files"].get(k) != after["files"].get(k):
            out.append(f"{k}: {before['files'].get(k)} -> {after['files'].get(k)}")
    for k in ("processes", "daemon", "envoys", "rejected_events"):
        if before[k] != after[k]:
            out.append(f"{k}: {before[k]} -> {after[k]}")
    return out


def sweep(t) -> dict:
    """Run every attempt as the other user against the running lab `t`; returns the per-surface
    figures, the attempts that succeeded, and what changed for the owner (both empty when safe)."""
    reason = unavailable()
    if reason:
        return {"skipped": reason}
    d = Path(tempfile.mkdtemp(prefix="lab-intruder-"))   # root's own: the other user cannot make the marker
    marker = d / "pwned"
    try:
        before = owner_state(t)
        p = plan(t, marker)
        t0 = time.monotonic()
        attempts = run_as_other(PROBE, p)
        seconds = round(time.monotonic() - t0, 1)
        time.sleep(1.0)  # a Deployment that was taken would be reconciled and started by now
        after = owner_state(t)
        changed = differences(before, after)
        if marker.exists():
            changed.append(f"the local-command Deployment ran: {marker} exists")
        answering = {path: t.curl(path, quiet=True, timeout=5).status for path in STABLE}
        if any(s != 200 for s in answering.values()):
            changed.append(f"the stable routes answer {answering}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    figures = {s: {"attempted": 0, "refused": 0, "succeeded": 0, "data plane": 0} for s in SURFACES}
    for surface, _, _, outcome, *_ in attempts:
        figures.setdefault(surface, {"attempted": 0, "refused": 0, "succeeded": 0, "data plane": 0})
        figures[surface]["attempted"] += 1
        figures[surface][outcome] += 1
    return {"surfaces": figures, "succeeded": [a for a in attempts if a[3] == "succeeded"],
            "changed": changed, "attempts": len(attempts), "seconds": seconds,
            "slowest": sorted(attempts, key=lambda a: -a[5])[:5],
            "tcp_ports": len(p["tcp"]), "entries": len(p["entries"]), "node_ids": len(p["node_ids"])}
