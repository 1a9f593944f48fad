"""Scenario exposure: what the lab exposes, and to whom."""
from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import ssl
import stat
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from ...runtime.supervisor import pid_alive
from .common import (
    Lab, NS, ROOT, Sizes, WALKTHROUGH, _answering, _container, _gateway, _kv, _lab_pids, _pod, _raw, _say, _send,
    check)


def _decode_addr(hexaddr: str) -> str:
    host, _, _ = hexaddr.partition(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def listening_sockets() -> list:
    """(proto, address, port, inode) of every listening TCP socket and bound UDP socket."""
    out = []
    for table, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        try:
            lines = open(f"/proc/net/{table}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == state:
                out.append((table, _decode_addr(parts[1]), int(parts[1].split(":")[1], 16), parts[9]))
    return out


def _socket_inodes(pid: int) -> set:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        pass  # the process is gone
    return inodes


def _loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _key_files(roots, limit: int = 200_000) -> dict:
    """path -> (mtime_ns, mode) of every *.key file under `roots` (bounded walk)."""
    found, seen = {}, 0
    for root in roots:
        for d, dirs, files in os.walk(root, onerror=lambda e: None):
            dirs[:] = [x for x in dirs if x not in (".venv", ".git", "node_modules", "__pycache__")
                       and not x.startswith(".venv-")]   # the version matrix's environments
            seen += len(files) + len(dirs)
            if seen > limit:
                return found
            for f in files:
                if f.endswith(".key"):
                    p = os.path.join(d, f)
                    try:
                        st = os.stat(p)
                        found[p] = (st.st_mtime_ns, st.st_mode & 0o777)
                    except OSError:
                        pass  # removed while the walk ran
    return found


def _lab_home_of(path: str) -> str | None:
    """The lab home a key file lives in (<home>/certs/...), or None."""
    p = Path(path)
    for parent in p.parents:
        if parent.name == "certs" and (parent.parent / "state.db").exists():
            return str(parent.parent)
    return None


def _wrong_ca_pem() -> tuple:
    """A CA nobody trusts and a client certificate it signed (PEM bytes; nothing written)."""
    from ...runtime import pki
    ca = pki.make_ca("not the lab CA", 1)
    leaf, key = pki.make_leaf(ca, "gateway", 1, ["gateway.ex-mtls-mesh.svc.cluster.local"], role="client")
    return pki.pem(ca[0]), pki.pem(leaf) + pki.key_pem(key)


def _tls_get(port: int, ctx: ssl.SSLContext, server_hostname: str, path: str = "/") -> str:
    """'200' etc. on success; the error class name when the handshake or the request fails."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: {server_hostname}\r\nConnection: close\r\n\r\n".encode())
                data = s.recv(4096)
                if not data:
                    return "closed"
                m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
                return m.group(1).decode() if m else "garbage"
    except ssl.SSLCertVerificationError:
        return "SSLCertVerificationError"
    except ssl.SSLError as exc:
        return f"SSLError({exc.reason})"
    except OSError as exc:
        return type(exc).__name__


def scenario_exposure(quick: bool = False, out=sys.stdout, sz: Sizes | None = None) -> dict:
    t_start = time.monotonic()
    _say(out, "reliability exposure: listening addresses, Envoy admin through the gateway, TLS and mTLS with wrong "
              "certificates, key files and state file modes")
    res: dict = {"scenario": "exposure"}
    scan_roots = [tempfile.gettempdir(), str(ROOT)]
    keys_before = _key_files(scan_roots)
    checks = []
    with Lab("exposure") as lab:
        t = lab.t
        t.apply(WALKTHROUGH)
        t.apply("manifests/examples/tls-gateway/")
        t.apply("manifests/examples/mtls-mesh/")
        _answering(t)
        lab.remember()
        home = lab.home
        # -- loopback only ------------------------------------------------------------------------
        ports = {k[len("port:"):]: v for k, v in _kv(home, "port:").items()}
        socks = listening_sockets()
        by_port: dict = {}
        for proto, addr, port, inode in socks:
            by_port.setdefault(port, []).append((proto, addr))
        lab_ports_open = {k: p for k, p in ports.items() if p in by_port}
        exposed_ports = {k: by_port[p] for k, p in lab_ports_open.items() if not all(_loopback(a) for _, a in by_port[p])}
        pids = _lab_pids(home)
        inodes = set().union(*(_socket_inodes(p) for p in pids)) if pids else set()
        owned = [(proto, addr, port) for proto, addr, port, inode in socks if inode in inodes]
        exposed_owned = [s for s in owned if not _loopback(s[1])]
        res["listen"] = {"lab_ports": len(ports), "lab_ports_listening": len(lab_ports_open),
                         "sockets_of_lab_processes": len(owned), "processes": len(pids)}
        _say(out, f"  {len(lab_ports_open)} of the store's {len(ports)} port:* entries listen; the lab's {len(pids)} "
                  f"processes hold {len(owned)} listening sockets; not on loopback: "
                  f"{len(exposed_ports) + len(exposed_owned)}")
        checks.append(check("lab ports (kv port:*) listening beyond loopback", len(exposed_ports), "0",
                            not exposed_ports, json.dumps(exposed_ports)[:200] if exposed_ports else ""))
        checks.append(check("listening sockets of lab processes beyond loopback", len(exposed_owned), "0",
                            not exposed_owned, str(exposed_owned[:5]) if exposed_owned else ""))
        checks.append(check("lab ports found listening", len(lab_ports_open), "> 0", len(lab_ports_open) > 0))
        # -- what listens on TCP at all, and the Unix sockets --------------------------------------
        st = t.status()
        daemon_pid = st["daemon"]["pid"]
        api_port = int(st["endpoints"]["appmesh_api"].rsplit(":", 1)[1])
        data_plane = {p for k, p in ports.items() if k.split(":", 1)[0] in ("svc", "ingress", "egress", "app")}
        daemon_tcp = sorted({port for proto, addr, port, inode in socks
                             if proto.startswith("tcp") and inode in _socket_inodes(daemon_pid)})
        other_tcp = sorted({port for proto, addr, port, inode in socks if proto.startswith("tcp") and inode in inodes
                            and inode not in _socket_inodes(daemon_pid)} - data_plane)
        stale_keys = sorted(k for k in ports if k == "xds" or k.startswith("admin:"))
        socks_dir = lab.t.client.sockets
        unix = [socks_dir.api, socks_dir.xds] + [socks_dir.admin(p["namespace"], p["name"])
                                                 for p in t.pods() if p["proxy"]]
        modes = {}
        for path in unix:
            try:
                sst = os.stat(path)
                modes[path.name] = (oct(sst.st_mode & 0o777) if stat.S_ISSOCK(sst.st_mode) else "not a socket",
                                    sst.st_uid == os.getuid())
            except OSError as exc:
                modes[path.name] = (type(exc).__name__, False)
        bad_modes = {k: v for k, v in modes.items() if v != ("0o600", True)}
        dir_mode = oct(os.stat(socks_dir.dir).st_mode & 0o777)
        refused = {}
        for variant, headers in (("Origin", {"Host": f"127.0.0.1:{api_port}", "Origin": "http://evil.example",
                                             "Content-Type": "text/plain"}),
                                 ("Host", {"Host": f"evil.example:{api_port}", "Content-Type": "text/plain"})):
            refused[variant] = _send(api_port, "POST", "/v20190125/meshes", headers, b'{"meshName": "x"}',
                                     timeout=10)[0]
        _say(out, f"  TCP: the daemon listens on {daemon_tcp} (App Mesh API {api_port}); Envoys and apps on data-plane "
                  f"ports only ({len(other_tcp)} others: {other_tcp[:5]}); Unix sockets {len(unix)} in {dir_mode}: "
                  f"{len(bad_modes)} not 0600/yours; browser-shaped POSTs to the API: {refused}")
        checks.append(check("TCP ports the daemon listens on", daemon_tcp, f"[{api_port}] (the App Mesh API)",
                            daemon_tcp == [api_port]))
        checks.append(check("TCP ports of Envoys and apps outside the data plane", len(other_tcp), "0",
                            not other_tcp, str(other_tcp[:5]) if other_tcp else "admin and xDS are Unix sockets"))
        checks.append(check("admin or xDS ports in the store", len(stale_keys), "0", not stale_keys,
                            ", ".join(stale_keys[:5])))
        checks.append(check("control, xDS and Envoy admin sockets not 0600 or not the owner's", len(bad_modes), "0",
                            not bad_modes and len(modes) >= 3, json.dumps(bad_modes)[:200] if bad_modes
                            else f"{len(modes)} sockets"))
        checks.append(check("folder of the sockets", dir_mode, "0o700", dir_mode == "0o700"))
        checks.append(check("App Mesh API: text/plain POST with a foreign Origin / Host", refused, "403 / 403",
                            refused == {"Origin": 403, "Host": 403}))
        # -- admin through the gateway ------------------------------------------------------------
        gw = _pod(t, "appmesh-gateway")
        envoy = _container(gw, "envoy")
        admin_sock = t.admin_socket(gw["name"])
        admin = 9901  # Envoy's admin port in a pod: what a request smuggled through the gateway would name
        host, gport = _gateway(t)
        assert _send(admin_sock, "GET", "/ready")[0] == 200  # the admin answers on its own socket
        paths = ["/config_dump", "/stats", "/stats/prometheus", "/server_info", "/clusters", "/listeners", "/ready",
                 "/certs", "/memory", "/runtime", "/runtime_modify?re2.max_program_size.error_level=1",
                 "/logging?level=trace", "/healthcheck/fail", "/drain_listeners", "/reset_counters",
                 "/cpuprofiler?enable=y", "/heapprofiler?enable=y", "/quitquitquit", "/"]
        hosts = [None, f"127.0.0.1:{admin}", f"localhost:{admin}", f"[::1]:{admin}", "127.0.0.1"]
        answers = Counter()
        leaked = []
        for p in paths:
            for hh in hosts:
                for method in ("GET", "POST"):
                    status, _, body = _send(gport, method, p, {"Host": hh} if hh else {}, b"" if method == "POST" else None,
                                            timeout=10)
                    answers[status] += 1
                    if status != 404 or b"configs" in body or b"envoy" in body.lower()[:200]:
                        leaked.append((method, p, hh, status))
        for raw in (f"GET http://127.0.0.1:{admin}/quitquitquit HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\n"
                    "Connection: close\r\n\r\n",
                    f"POST http://127.0.0.1:{admin}/quitquitquit HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\n"
                    "Content-Length: 0\r\nConnection: close\r\n\r\n",
                    f"CONNECT 127.0.0.1:{admin} HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nConnection: close\r\n\r\n"):
            answer = _raw(gport, raw.encode(), half_close=False)
            m = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
            status = int(m.group(1)) if m else None
            answers[status] += 1
            if status not in (400, 403, 404, 405) or b"configs" in answer:
                leaked.append((raw.split(" ")[0], "absolute-form/CONNECT", admin, status))
        time.sleep(0.3)
        gw_after = next(p for p in t.pods(NS) if p["name"] == gw["name"])
        still = _container(gw_after, "envoy")
        alive = still["pid"] == envoy["pid"] and still["restarts"] == envoy["restarts"] and pid_alive(envoy["pid"])
        products = t.curl("/products", quiet=True).status
        n_admin = sum(answers.values())
        _say(out, f"  {n_admin} requests for admin paths through the gateway: {dict(answers)}; reached admin: "
                  f"{len(leaked)}; gateway Envoy same pid after: {alive}; /products {products}")
        checks.append(check("admin paths through the gateway answered other than 404", len(leaked), "0", not leaked,
                            str(leaked[:5]) if leaked else f"{n_admin} requests, Host headers naming the admin port"))
        checks.append(check("gateway Envoy alive (same pid, no restart) after them", alive, "true", alive))
        checks.append(check("/products after them", products, "200", products == 200))
        # -- TLS at the gateway -------------------------------------------------------------------
        ca_file = home / "certs" / "ca" / "ca.crt"
        wrong_ca, wrong_client = _wrong_ca_pem()
        tls_port = _gateway(t, "gateway_ex-tls-gateway")[1]
        right = ssl.create_default_context(cafile=str(ca_file))
        wrong = ssl.create_default_context(cadata=wrong_ca.decode())
        for ctx in (right, wrong):
            ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # as Python 3.13's default context does
        r_right = _tls_get(tls_port, right, "localhost")
        r_wrong = _tls_get(tls_port, wrong, "localhost")
        r_name = _tls_get(tls_port, right, "evil.example")
        plain = _send(tls_port, "GET", "/", timeout=5)[0]
        _say(out, f"  TLS gateway: right CA -> {r_right}; wrong CA -> {r_wrong}; right CA, wrong name -> {r_name}; "
                  f"plain HTTP -> {plain}")
        checks.append(check("TLS gateway with the lab CA", r_right, "200", r_right == "200"))
        checks.append(check("TLS gateway with a wrong CA", r_wrong, "SSLCertVerificationError",
                            r_wrong == "SSLCertVerificationError"))
        checks.append(check("TLS gateway for a name not in its certificate", r_name, "SSLCertVerificationError",
                            r_name == "SSLCertVerificationError"))
        checks.append(check("plain HTTP to the TLS listener", plain, "no HTTP answer", plain is None))
        # -- mTLS at the accounts sidecar ---------------------------------------------------------
        nid = next(k for k in ports if k.startswith("ingress:") and "accounts" in k)
        ingress = ports[nid]
        cdir = lab.dir / "client"
        cdir.mkdir(mode=0o700)
        wrong_pem = cdir / "wrong-client.pem"
        wrong_pem.write_bytes(wrong_client)
        os.chmod(wrong_pem, 0o600)
        sni = "accounts.ex-mtls-mesh.svc.cluster.local"
        no_cert = ssl.create_default_context(cafile=str(ca_file))
        no_cert.check_hostname = False
        bad_cert = ssl.create_default_context(cafile=str(ca_file))
        bad_cert.check_hostname = False
        bad_cert.load_cert_chain(str(wrong_pem))
        good = ssl.create_default_context(cafile=str(ca_file))
        good.check_hostname = False
        good.load_cert_chain(str(home / "certs" / "gateway" / "tls.crt"), str(home / "certs" / "gateway" / "tls.key"))
        m_none = _tls_get(ingress, no_cert, sni)
        m_bad = _tls_get(ingress, bad_cert, sni)
        m_good = _tls_get(ingress, good, sni)
        via_gw = t.curl("/", quiet=True, gateway="gateway_ex-mtls-mesh").status
        _say(out, f"  mTLS sidecar (accounts): no client certificate -> {m_none}; certificate from a wrong CA -> "
                  f"{m_bad}; the gateway's certificate -> {m_good}; through the gateway -> {via_gw}")
        refused = lambda r: r not in ("200",) and not r.startswith("4") and not r.startswith("5")  # noqa: E731
        checks.append(check("mTLS sidecar without a client certificate", m_none, "refused", refused(m_none)))
        checks.append(check("mTLS sidecar with a certificate from a wrong CA", m_bad, "refused", refused(m_bad)))
        checks.append(check("mTLS sidecar with the gateway's certificate", m_good, "HTTP answer",
                            m_good.isdigit()))
        checks.append(check("mTLS example through its gateway", via_gw, "200", via_gw == 200))
        # -- secrets and state files ----------------------------------------------------------------
        keys_after = _key_files(scan_roots)
        new = {p: v for p, v in keys_after.items() if keys_before.get(p) != v}
        mine = {p: v for p, v in new.items() if p.startswith(str(home) + os.sep)}
        mine_bad = {p: oct(v[1]) for p, v in mine.items()
                    if not p.startswith(str(home / "certs") + os.sep) or v[1] != 0o600}
        in_repo = [p for p in new if p.startswith(str(ROOT) + os.sep)]
        elsewhere = [p for p in new if p not in mine and p not in in_repo]
        other_labs = [p for p in elsewhere if _lab_home_of(p)]
        stray = [p for p in elsewhere if not _lab_home_of(p)]
        all_keys_home = {p: oct(v[1]) for p, v in keys_after.items() if p.startswith(str(home) + os.sep)}
        _say(out, f"  key files: {len(mine)} new under this lab's home ({len(mine_bad)} outside certs/ or not 0600); "
                  f"{len(in_repo)} new in the repository; elsewhere under {tempfile.gettempdir()}: {len(other_labs)} in "
                  f"other lab homes (concurrent runs), {len(stray)} not in any lab home")
        checks.append(check("key files of this lab outside <home>/certs or not 0600", len(mine_bad), "0",
                            not mine_bad and bool(mine), json.dumps(mine_bad)[:200] if mine_bad else
                            f"{len(all_keys_home)} keys, all 0600 under certs/"))
        checks.append(check("new key files in the repository", len(in_repo), "0", not in_repo, str(in_repo[:3])))
        checks.append(check(f"new key files under {tempfile.gettempdir()} outside any lab home", len(stray), "0",
                            None, ("not judged: other people's test runs share this directory; " + str(stray[:3]))
                            if stray else "none"))
        modes = {}
        for f in sorted(home.rglob("*")):
            try:
                modes[str(f.relative_to(home))] = os.stat(f).st_mode & 0o777
            except OSError:
                continue
        home_mode = os.stat(home).st_mode & 0o777
        db_modes = {k: oct(v) for k, v in modes.items() if k.startswith("state.db")}
        world_readable = sorted(k for k, v in modes.items() if v & 0o004 and not k.endswith(".crt"))
        _say(out, f"  home {oct(home_mode)}; {db_modes}; files readable by others (certificates aside): "
                  f"{len(world_readable)} {world_readable[:5]}")
        checks.append(check("lab home mode", oct(home_mode), "0o700", home_mode == 0o700))
        checks.append(check("state.db (and -wal, -shm) readable by others", db_modes, "0o600",
                            all(int(v, 8) & 0o077 == 0 for v in db_modes.values())))
        checks.append(check("other files under the home readable by others", len(world_readable), "0 (home is 0700 anyway)",
                            not world_readable, ", ".join(world_readable[:5])))
        # -- another local user -------------------------------------------------------------------
        checks += _another_user(lab, res, out)
        lab.remember()
    checks.append(check("processes left behind after teardown", len(lab.leftovers), "0", not lab.leftovers))
    res["checks"] = checks
    res["seconds"] = round(time.monotonic() - t_start, 1)
    return res


def _another_user(lab, res: dict, out) -> list:
    """Every way in, tried as another local user (local_user.py), with the lab's folder passable
    (0755, as a home under /home often is), so that what stops it is the lab's own modes."""
    from .local_user import SURFACES, sweep
    mode = os.stat(lab.dir).st_mode & 0o777
    os.chmod(lab.dir, 0o755)
    try:
        lu = sweep(lab.t)
    finally:
        os.chmod(lab.dir, mode)
    if "skipped" in lu:
        _say(out, f"  another local user: not run ({lu['skipped']})")
        res["local_user"] = lu
        return [check("another local user: attempts that succeeded", None, "0", None, f"not run: {lu['skipped']}")]
    res["local_user"] = {k: lu[k] for k in ("surfaces", "attempts", "seconds", "tcp_ports", "entries", "node_ids")}
    res["local_user"]["succeeded"] = [" ".join(a[:4]) for a in lu["succeeded"][:20]]
    res["local_user"]["changed"] = lu["changed"][:20]
    _say(out, f"  another local user (nobody): {lu['attempts']} attempts in {lu['seconds']} s on {lu['tcp_ports']} TCP "
              f"ports, {lu['entries']} entries of the home and runtime folders, {lu['node_ids']} node ids; succeeded "
              f"{len(lu['succeeded'])}; the owner's state changed: {len(lu['changed'])}")
    checks = []
    for surface in SURFACES:
        f = lu["surfaces"][surface]
        checks.append(check(f"another local user: {surface}", f"{f['succeeded']} of {f['attempted']} succeeded",
                            "0 succeeded", f["succeeded"] == 0 and f["attempted"] > 0,
                            f"{f['refused']} refused" + (f", {f['data plane']} answered as the data plane does for "
                                                         "anyone" if f["data plane"] else "")))
    checks.append(check("another local user: the owner's resources, files, processes, Envoys, routes changed",
                        len(lu["changed"]), "0", not lu["changed"], "; ".join(lu["changed"][:3])))
    return checks
