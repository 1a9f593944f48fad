"""The data-plane benchmark's upstream: a static answer that is not the bottleneck.

Run as a pod's container by the local lab (`python -m lab.bench.upstream`, the pod template's
local-command annotation): it reads PORT and HOST as the lab gives every container, writes a
config into UPSTREAM_DIR and replaces itself (exec) with nginx answering every request with a
fixed one-line body (one process, no master: `master_process off`), or, without nginx, with
an Envoy whose only route is a `direct_response`. Either way no Python runs on the request
path, so the benchmark measures the proxies in front of it, not the app.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

BODY = "ok\n"

# One unprivileged nginx worker with everything it writes in its own directory {d}: the start of
# both configurations the benches use (this static upstream, and dataplane's reverse proxy).
NGINX_MAIN = """\
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
"""

NGINX_CONF = NGINX_MAIN + """\
    keepalive_requests 1000000;
    server {{
        listen {host}:{port};
        default_type text/plain;
        location / {{ return 200 "{body}"; }}
    }}
}}
"""


def nginx_path() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def envoy_config(host: str, port: int) -> dict:
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                    "HttpConnectionManager",
           "stat_prefix": "upstream", "codec_type": "AUTO",
           "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
               "match": {"prefix": "/"},
               "direct_response": {"status": 200, "body": {"inline_string": BODY}}}]}]},
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    return {"static_resources": {"listeners": [{
        "name": "upstream", "address": {"socket_address": {"address": host, "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": hcm}]}]}]}}


def argv(host: str, port: int, workdir: Path) -> list[str]:
    """The command the upstream becomes, its config written into `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    nginx = nginx_path()
    if nginx:
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(d=workdir, connections=4096, host=host, port=port, body=BODY.replace("\n", "\\n")))
        return [nginx, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log"),
                "-g", "daemon off; master_process off;"]
    from ..runtime.envoy import find_envoy
    conf = workdir / "envoy.json"
    conf.write_text(json.dumps(envoy_config(host, port)))
    return [str(find_envoy()), "-c", str(conf), "--concurrency", "1", "--disable-hot-restart",
            "-l", "warning"]


def main() -> None:
    port = int(os.environ["PORT"])
    host = os.environ.get("HOST", "127.0.0.1")
    workdir = Path(os.environ.get("UPSTREAM_DIR") or Path.cwd() / "upstream")
    cmd = argv(host, port, workdir)
    sys.stdout.flush()
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
