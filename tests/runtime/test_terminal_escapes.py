"""What the CLI prints of user-controlled strings never reaches the terminal as a control
sequence: names, labels, events and log lines with ESC in them are shown escaped (\\x1b), by
`get`, `describe`, `logs` and `status`. Validation refuses such names, so the hostile objects are
written into the store directly, as a buggy or hostile API client could have left them."""
import os
import subprocess
import sys
import textwrap

import pytest

from lab.runtime.home import Paths
from lab.store import Store
from lab.terminal import escape
from tests.conftest import ROOT

pytestmark = pytest.mark.envoy

EVIL = "evil\x1b[2J\x1b]0;owned\x07\x9b31m"  # clear screen, retitle the window, C1 CSI


def test_escape_shows_every_control_character_and_keeps_what_it_is_told():
    assert escape(EVIL) == "evil\\x1b[2J\\x1b]0;owned\\x07\\x9b31m"
    assert escape("a\tb\nc\x00\x7f") == "a\\x09b\\x0ac\\x00\\x7f"
    assert escape("a\tb\nc", keep="\n\t") == "a\tb\nc"
    assert escape("abc\u202eevil") == "abc\\u202eevil"  # a bidi override would reorder what follows
    assert escape("héllo ✓") == "héllo ✓" and escape(42) == "42"


def test_validation_refuses_control_characters_in_names_and_labels():
    from lab.model import validate_texts
    text = textwrap.dedent("""\
        apiVersion: v1
        kind: Namespace
        metadata:
          name: "evil\\e[2J"
          labels:
            team: "a\\e]0;x\\a"
        """)
    result = validate_texts([("ns.yaml", text)])
    paths = {p.path for p in result.errors}
    assert {"metadata.name", "metadata.labels.team"} <= paths, [str(p) for p in result.problems]


@pytest.fixture(scope="module")
def hostile(lab):
    lab.apply_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Namespace
        metadata:
          name: plain
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          namespace: plain
        spec:
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers:
                - name: app
                  image: appmesh-lab/sample-app:latest
                  ports: [{containerPort: 8080}]
        """))
    store = Store(Paths(lab.client.paths.home).db)
    store.apply([(("Namespace", "", EVIL), {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": EVIL, "labels": {"team": EVIL}}})])
    store.add_event(("Namespace", "", EVIL), "Warning", "Hostile", f"message {EVIL}")
    store.close()
    pod = next(p for p in lab.pods("plain") if p["owner"] == "web")
    log = next(c["log"] for c in pod["containers"] if c["name"] == "app")
    with open(log, "a") as f:
        f.write(f"a request for /{EVIL}\n")
    return lab, pod


def _cli(lab, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, APPMESH_LAB_HOME=str(lab.client.paths.home))
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)


@pytest.mark.parametrize("args", [["get", "ns"], ["get", "ns", "-o", "wide"], ["describe", "ns", EVIL],
                                  ["logs", "web", "-n", "plain"], ["status"], ["doctor"], ["get", "ns", "-o", "yaml"],
                                  ["get", "ns", "-o", "json"]],
                         ids=["get", "get-wide", "describe", "logs", "status", "doctor", "get-yaml", "get-json"])
def test_the_cli_never_prints_a_control_sequence(hostile, args):
    lab, pod = hostile
    if args[0] == "logs":
        args = ["logs", pod["name"]]
    proc = _cli(lab, *args)
    shown = proc.stdout + proc.stderr
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown, repr(shown[-2000:])
    if args[0] in ("get", "describe", "logs") and "-o" not in args:
        assert "evil\\x1b[2J\\x1b]0;owned\\x07\\x9b31m" in shown, shown[-2000:]
    if args[0] == "describe":
        assert "team=evil\\x1b[2J" in shown and "message evil\\x1b" in shown, shown
