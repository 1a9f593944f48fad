"""A reader that goes away early (`appmesh-lab get gr -A | head -1`) ends the CLI quietly, as it
ends git: no traceback, and the status of a process ended by SIGPIPE (a shell shows 141).

Each printing verb runs against a real lab with its stdout on a pipe whose reader has already
closed, so its first write fails for certain; then two real shell pipelines through `head -1`.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NS = "appmesh-demo"

VERBS = [
    ["status"],
    ["status", "-o", "json"],
    ["get", "gr", "-A"],
    ["get", "vn", "-n", NS, "-o", "yaml"],
    ["get", "pods", "-A", "-o", "wide"],
    ["describe", "vg", "appmesh-gateway", "-n", NS],
    ["logs", "product-service"],
    ["logs", "appmesh-gateway", "-c", "envoy"],
    ["wait", "gr/product-gateway-route", "-n", NS, "--for=condition=GatewayRouteActive", "--timeout=10s"],
    ["curl", "/products"],
    ["config-dump", "appmesh-gateway"],
    ["stats", "appmesh-gateway"],
    ["apply", "-f", "manifests/walkthrough/"],
    ["delete", "gr", "no-such-route", "-n", NS],
    ["doctor"],
    ["up"],
    ["validate", "manifests/"],
    ["crds"],
    ["--help"],        # argparse (3.11 and newer) drops what it cannot write and exits 0 itself
    ["get", "--help"],
]


@pytest.fixture(scope="module")
def walkthrough(lab):
    lab.apply("manifests/walkthrough/")
    lab.eventually(lambda: _answers(lab), 30, what="/products through the gateway")
    return lab


def _answers(lab):
    assert lab.curl("/products").status == 200


def _env(lab) -> dict:
    return dict(os.environ, APPMESH_LAB_HOME=str(lab.client.paths.home))


def run_into_closed_pipe(args: list, env: dict) -> subprocess.CompletedProcess:
    read, write = os.pipe()
    os.close(read)   # the reader is gone before the first line
    try:
        # as a shell starts a pipeline: SIGPIPE at its default (Python's own children start so too)
        return subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=ROOT, env=env, stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)


@pytest.mark.parametrize("args", VERBS, ids=lambda a: " ".join(a))
def test_a_verb_whose_reader_closed_ends_quietly_with_sigpipe(walkthrough, args):
    r = run_into_closed_pipe(args, _env(walkthrough))
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr and "Exception ignored" not in r.stderr, \
        r.stderr
    want = (0, -signal.SIGPIPE) if "--help" in args else (-signal.SIGPIPE,)
    assert r.returncode in want, (r.returncode, r.stderr)


@pytest.mark.parametrize("command", ["appmesh-lab curl /products", "appmesh-lab config-dump appmesh-gateway"])
def test_a_pipeline_through_head_prints_one_line_and_no_traceback(walkthrough, command):
    exe = Path(sys.executable).with_name("appmesh-lab")
    if not exe.exists() or not shutil.which("bash") or not shutil.which("head"):
        pytest.skip("needs bash, head and the appmesh-lab console script beside this Python")
    script = f"set -o pipefail; {command.replace('appmesh-lab', str(exe), 1)} | head -1; echo \"status $?\" >&2"
    r = subprocess.run(["bash", "-c", script], cwd=ROOT, env=_env(walkthrough), capture_output=True, text=True,
                       timeout=60)
    assert len(r.stdout.splitlines()) == 1, r.stdout
    status = r.stderr.strip().splitlines()[-1]
    assert r.stderr.strip().splitlines()[:-1] == [], r.stderr   # nothing but our own status line
    # the whole answer may fit into the pipe before head closes it (0); otherwise SIGPIPE's 141
    assert status in ("status 0", "status 141"), r.stderr
    if "config-dump" in command:   # far more than a pipe holds: the CLI must have met the closed pipe
        assert status == "status 141", r.stderr


def test_a_broken_socket_is_still_an_error_not_a_quiet_exit(monkeypatch, capsys):
    """Only a closed stdout/stderr is quiet: a BrokenPipeError from anything else surfaces."""
    from lab import cli
    from lab.cli import parser

    def boom(args):
        raise BrokenPipeError(32, "Broken pipe (a socket)")
    monkeypatch.setattr(parser, "cmd_crds", boom)  # the grammar names the function that runs the verb
    with pytest.raises(BrokenPipeError):
        cli.main(["crds"])
