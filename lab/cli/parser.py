"""The command line's grammar: every verb, its arguments and the function that runs it."""
from __future__ import annotations

import argparse

from .. import __version__
from .doctor import cmd_doctor
from .lifecycle import cmd_down, cmd_status, cmd_up
from .manifests import cmd_crds, cmd_validate
from .proxies import cmd_config_dump, cmd_curl, cmd_stats
from .resources import cmd_apply, cmd_delete, cmd_describe, cmd_get, cmd_logs, cmd_wait


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="appmesh-lab", description="App Mesh GatewayRoute Lab: validate manifests, run "
                                "the local lab, drive the notebooks.")
    p.add_argument("--version", action="version", version=f"appmesh-lab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser("validate", help="check manifests against the App Mesh v1beta2 model",
                       description="Check manifest files or folders (multi-document YAML). Exit 0 when clean, "
                       "1 when there are errors, 2 on usage errors.")
    v.add_argument("paths", nargs="+", metavar="PATH")
    v.add_argument("-o", "--output", choices=("text", "json"), default="text")
    v.set_defaults(func=cmd_validate)

    c = sub.add_parser("crds", help="print, write or check the CRDs generated from the model")
    c.add_argument("--dir", default="manifests/crds", help="the folder of --write and --check (default %(default)s)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="write them into --dir (removing stale files)")
    g.add_argument("--check", action="store_true", help="exit 1 if --dir differs from the model")
    c.set_defaults(func=cmd_crds)
    add_parsers(sub)
    from .migrate import add_parser as add_migrate
    add_migrate(sub)
    return p


def add_parsers(sub) -> None:
    u = sub.add_parser("up", help="start the local lab daemon in the background")
    u.add_argument("--timeout", type=float, default=30,
                   help="seconds to wait for the new daemon to answer (default %(default)s)")
    u.set_defaults(func=cmd_up)
    d = sub.add_parser("down", help="stop the lab and every process it runs")
    d.add_argument("--purge", action="store_true", help="also remove what the lab made in its home (.lab/ or "
                   "$APPMESH_LAB_HOME), leaving other files there as they are")
    d.set_defaults(func=cmd_down)
    s = sub.add_parser("status", help="the daemon, its endpoints, proxies and pods")
    s.add_argument("-o", "--output", choices=("text", "json"), default="text")
    s.set_defaults(func=cmd_status)
    a = sub.add_parser("apply", help="apply manifests (files or folders) to the lab")
    a.add_argument("-f", "--filename", action="append", required=True,
                   help="a manifest file or folder (its .yaml/.yml files, in name order); repeatable")
    a.add_argument("-R", "--recursive", action="store_true", help="also apply subfolders (parents first)")
    a.add_argument("--dry-run", action="store_true", help="validate against the lab's resources, change nothing")
    a.add_argument("--no-wait", dest="wait", action="store_false",
                   help="do not wait until every proxy has ACKed the configuration this apply made")
    a.add_argument("--timeout", type=float, default=30, help="seconds to wait for the ACKs (default %(default)s)")
    a.set_defaults(func=cmd_apply)
    x = sub.add_parser("delete", help="delete resources (by file, or KIND NAME)")
    x.add_argument("kind", nargs="?")
    x.add_argument("name", nargs="?")
    x.add_argument("-f", "--filename", action="append")
    x.add_argument("-n", "--namespace", default="default")
    x.add_argument("--no-wait", dest="wait", action="store_false",
                   help="do not wait for the proxies to stop using what was deleted")
    x.add_argument("--timeout", type=float, default=30)
    x.set_defaults(func=cmd_delete)
    g = sub.add_parser("get", help="list resources, like kubectl get")
    g.add_argument("kind")
    g.add_argument("name", nargs="?")
    g.add_argument("-n", "--namespace", default="default")
    g.add_argument("-A", "--all-namespaces", action="store_true")
    g.add_argument("-o", "--output", choices=("text", "wide", "yaml", "json"), default="text")
    g.set_defaults(func=cmd_get)
    de = sub.add_parser("describe", help="a resource, its conditions and events")
    de.add_argument("kind")
    de.add_argument("name", nargs="?")
    de.add_argument("-n", "--namespace", default="default")
    de.set_defaults(func=cmd_describe)
    lg = sub.add_parser("logs", help="a pod's logs (the app, or -c envoy)")
    lg.add_argument("pod")
    lg.add_argument("-c", "--container")
    lg.add_argument("--tail", type=int, default=0)
    lg.set_defaults(func=cmd_logs)
    w = sub.add_parser("wait", help="wait for a condition, like kubectl wait")
    w.add_argument("target", help="KIND/NAME, or KIND for all of that kind")
    w.add_argument("--for", dest="for_", required=True, metavar="condition=NAME[=True|False]",
                   help="e.g. --for=condition=GatewayRouteActive")
    w.add_argument("--timeout", default="30s", help="e.g. 500ms, 30s, 2m (default %(default)s)")
    w.add_argument("-n", "--namespace", default="default")
    w.set_defaults(func=cmd_wait)
    cu = sub.add_parser("curl", help="send an HTTP request through the virtual gateway")
    cu.add_argument("path")
    cu.add_argument("-H", "--header", action="append")
    cu.add_argument("-X", "--request", default="GET")
    cu.add_argument("-d", "--data")
    cu.add_argument("--gateway", help="which gateway, when there are several: its name, or a prefix only it has; vg/NAME for a "
                    "virtual gateway, gateway/NAME for a Gateway API Gateway")
    cu.add_argument("--wait", type=float, default=10, help="retry 404/503 and refused connections this long")
    cu.add_argument("--no-retry", action="store_true")
    cu.add_argument("-f", "--fail", action="store_true", help="exit 22 on an HTTP error status, like curl -f")
    cu.add_argument("-s", "--silent-headers", action="store_true", help="print only the status line and body")
    cu.set_defaults(func=cmd_curl)
    cd = sub.add_parser("config-dump", help="a proxy's Envoy configuration (by pod, proxy or resource name)")
    cd.add_argument("proxy")
    cd.add_argument("--include-eds", action="store_true")
    cd.add_argument("-o", "--output", choices=("json", "yaml"), default="json")
    cd.set_defaults(func=cmd_config_dump)
    stt = sub.add_parser("stats", help="a proxy's Envoy stats")
    stt.add_argument("proxy")
    stt.add_argument("--filter")
    stt.set_defaults(func=cmd_stats)
    doc = sub.add_parser("doctor", help="check the lab (or with --target kind|eks a cluster) and explain each problem "
                                        "in one line")
    doc.add_argument("--target", choices=("local", "kind", "eks"), default="local",
                     help="kind|eks: the cluster's first-run checklist (tools, RBAC, webhooks, injection, manifests, "
                          "logs, Envoy, the gateway), stopping at the first failure, with a bundle in runs/")
    doc.add_argument("--record", metavar="DIR", help="clusters: also save the API objects read into DIR/cluster.json, "
                                                     "the form the cluster tests replay")
    doc.add_argument("--output-dir", help="clusters: where the diagnostic bundle goes (default runs/)")
    doc.set_defaults(func=cmd_doctor)
    # notebooks: the papermill end-to-end runner and JupyterLab (defined in lab/e2e.py)
    from ..e2e import add_e2e_parser, add_jupyter_parser
    add_e2e_parser(sub)
    add_jupyter_parser(sub)
    from ..lessons import add_lessons_parser   # the lessons' sources and notebooks (lab/lessons.py)
    add_lessons_parser(sub)
    from ..controller.main import add_arguments, cmd_controller  # in-cluster mode (the controller image)
    ctl = sub.add_parser("controller", help="run the in-cluster controller (entry point of the controller image)")
    add_arguments(ctl)
    ctl.set_defaults(func=cmd_controller)
    from ..bench import add_parser as add_bench
    add_bench(sub)
