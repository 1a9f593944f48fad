"""Envoy's stats and config dumps, the proxies' table, and running the kit's CLI from a lesson."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

from .common import NotebookError, ROOT, tidy


# ---- Envoy: stats and config dumps -------------------------------------------------------

def stat(stats: dict, pattern: str) -> int:
    """Sum of the counters whose name matches the regular expression `pattern`."""
    rx = re.compile(pattern)
    return sum(v for k, v in stats.items() if rx.search(k))


def host_health(t, proxy: str, cluster: str) -> list[dict]:
    """The hosts of the clusters of `proxy` whose name contains `cluster`, as Envoy's admin
    `/clusters` lists them: {"cluster", "host", "health_flags", "rq_total", "rq_error"}
    (health_flags "healthy", or e.g. "/failed_outlier_check" while outlier detection ejects it)."""
    raw = t.admin(proxy, "/clusters")
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw.text
    hosts: dict = {}
    for line in text.splitlines():
        parts = line.split("::")
        if len(parts) != 4 or cluster not in parts[0] or parts[2] not in ("health_flags", "rq_total", "rq_error"):
            continue
        h = hosts.setdefault((parts[0], parts[1]), {"cluster": parts[0], "host": parts[1]})
        h[parts[2]] = parts[3] if parts[2] == "health_flags" else int(parts[3])
    return list(hosts.values())


def config_summary(dump: dict) -> tuple[list, list]:
    """A human reading of an Envoy config dump: (listeners, routes) as table rows."""
    listeners, routes = [], []
    for c in dump.get("configs", []):
        if c.get("@type", "").endswith("ListenersConfigDump"):
            for entry in c.get("dynamic_listeners", []):
                lst = (entry.get("active_state") or entry.get("warming_state") or {}).get("listener") or {}
                addr = (lst.get("address") or {}).get("socket_address") or {}
                hcm = _hcm(lst)
                tls = any((fc.get("transport_socket") or {}) for fc in lst.get("filter_chains", []))
                where = "internal (no socket)" if "internal_listener" in lst else f"{addr.get('address')}:{addr.get('port_value')}"
                listeners.append([entry["name"], where,
                                  ((hcm or {}).get("rds") or {}).get("route_config_name", "-"), "TLS" if tls else "plain"])
        if c.get("@type", "").endswith("RoutesConfigDump"):
            for rc in c.get("dynamic_route_configs", []):
                cfg = rc.get("route_config") or {}
                for vh in cfg.get("virtual_hosts", []):
                    for r in vh.get("routes", []):
                        m = r.get("match") or {}
                        match = next((f"{k} {m[k] if k != 'safe_regex' else m[k].get('regex')}"
                                      for k in ("prefix", "path", "safe_regex", "path_separated_prefix") if k in m), "?")
                        if m.get("headers"):
                            match += " + headers " + ",".join(h["name"] for h in m["headers"])
                        act = r.get("route") or {}
                        target = act.get("cluster") or ",".join(
                            f"{w['name']}={w.get('weight')}" for w in (act.get("weighted_clusters") or {}).get("clusters", []))
                        rewrite = act.get("host_rewrite_literal", "")
                        if act.get("regex_rewrite"):
                            rewrite += f" path {act['regex_rewrite']['pattern']['regex']} -> " \
                                       f"{act['regex_rewrite']['substitution']}"
                        elif "prefix_rewrite" in act:
                            rewrite += f" prefix -> {act['prefix_rewrite']}"
                        routes.append([cfg.get("name"), r.get("name", "-"), match, target or r.get("direct_response", "-"),
                                       rewrite.strip() or "-"])
    return listeners, routes


def _hcm(listener: dict) -> dict | None:
    for fc in listener.get("filter_chains", []):
        for f in fc.get("filters", []):
            if f.get("name") == "envoy.filters.network.http_connection_manager":
                return f.get("typed_config")
    return None


def find_all(obj, key: str) -> list:
    """Every value stored under `key` anywhere in a nested JSON structure."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                out.append(v)
            out += find_all(v, key)
    elif isinstance(obj, list):
        for v in obj:
            out += find_all(v, key)
    return out


def tls_contexts(dump: dict) -> list[dict]:
    """The TLS transport sockets in a config dump: [{'side': downstream|upstream, 'where', ...}]."""
    out = []

    def walk(obj, where):
        if isinstance(obj, dict):
            tc = obj.get("typed_config") if obj.get("name") == "envoy.transport_sockets.tls" else None
            if isinstance(tc, dict):
                side = "downstream" if tc.get("@type", "").endswith("DownstreamTlsContext") else "upstream"
                common = tc.get("common_tls_context") or {}
                certs = [c.get("certificate_chain", {}).get("filename") for c in common.get("tls_certificates", [])]
                vc = common.get("validation_context") or {}
                sans = list(dict.fromkeys(m.get("matcher", {}).get("exact")
                                          for m in vc.get("match_typed_subject_alt_names", [])))
                out.append({"side": side, "where": where, "certificate": ", ".join(filter(None, certs)) or "-",
                            "trusted_ca": (vc.get("trusted_ca") or {}).get("filename", "-"),
                            "client_cert_required": bool((tc.get("require_client_certificate") or False)),
                            "san": ", ".join(filter(None, sans)) or "-"})
            name = obj.get("name")
            for k, v in obj.items():
                walk(v, name if isinstance(name, str) and k != "typed_config" else where)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, where)
    walk(dump, "-")
    return out


def proxy_rows(t) -> list:
    """Local lab: (proxy, connected, all ACKed, last NACK) for every Envoy the control plane knows."""
    rows = []
    for p in t.status()["proxies"]:
        if not p.get("snapshot_version"):
            continue
        types = p.get("types", {})
        acked = all(x["acked_version"] == x["last_sent_version"] for x in types.values() if x["last_sent_version"])
        nack = next((" ".join(x["nack"]["message"].split()) for x in types.values() if x.get("nack")), "")
        rows.append([p["node_id"], "yes" if p["connected"] else "no", "yes" if acked else "no", nack or "-"])
    return rows


def listening(port: int) -> list[str]:
    """The local sockets listening on `port`, as testinfra's local backend sees them
    (e.g. tcp://127.0.0.1:8080; gRPC servers show as tcp://::ffff:127.0.0.1:PORT)."""
    import testinfra
    return [s for s in testinfra.get_host("local://").socket.get_listening_sockets() if s.endswith(f":{port}")]


def cli(*args: str, check: bool | None = None) -> subprocess.CompletedProcess:
    """Run `appmesh-lab ARGS` (the kit's CLI, against this kernel's lab) and print its output."""
    print("$ appmesh-lab " + shlex.join(args))
    proc = subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=ROOT, text=True, capture_output=True,
                          env=dict(os.environ))
    sys.stdout.write(tidy(proc.stdout))
    if proc.stderr.strip():
        sys.stdout.write(tidy(proc.stderr))
    if check and proc.returncode != 0:
        raise NotebookError(f"appmesh-lab {' '.join(args)} exited with {proc.returncode}")
    return proc


