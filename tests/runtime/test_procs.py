"""Processes are tracked, not guessed: the lab signals a pid only while it is provably the process
the lab started (pid, start time, command line). An unrelated process that got a recycled pid is
never adopted, never killed: not by `down`, not by the supervisor of a restarted daemon."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lab.runtime import procs
from lab.runtime.client import Client
from lab.runtime.procs import Identity
from lab.runtime.supervisor import ProcSpec, Supervisor
from lab.store import Store

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc (Linux)")


@pytest.fixture
def bystander():
    """An unrelated process of the same user: what a recycled pid would belong to."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    deadline = time.time() + 5
    while procs.identify(p.pid) is None or procs.identify(p.pid).cmdline[-1:] != ("import time; time.sleep(120)",):
        assert time.time() < deadline
        time.sleep(0.01)
    yield p
    p.kill()
    p.wait(5)


def _gone_lab_process(tmp_path) -> dict:
    """What the supervisor stores for a process it started, after that process has ended."""
    store = Store(tmp_path / "state.db")
    sup = Supervisor(store)
    spec = ProcSpec("ns/pod-1/app", ["sleep", "60"], {"PATH": os.environ["PATH"]}, tmp_path / "pods" / "app.log")
    sup.ensure({spec.name: spec})
    rec = store.kv_get(f"proc:{spec.name}")
    sup.stop_all(grace=2)
    store.kv_set(f"proc:{spec.name}", rec)  # left behind, as by a daemon that was killed
    store.close()
    return rec


def test_the_identity_is_pid_start_time_and_command_line(bystander):
    ident = procs.identify(bystander.pid)
    with open(f"/proc/{bystander.pid}/stat") as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    assert ident.pid == bystander.pid and ident.start == start
    assert ident.cmdline == (sys.executable, "-c", "import time; time.sleep(120)")
    assert procs.is_running(ident)
    assert Identity.from_dict(json.loads(json.dumps(ident.to_dict()))) == ident


def test_a_pid_with_another_start_time_is_not_signalled(bystander):
    me = procs.identify(bystander.pid)
    recycled = Identity(bystander.pid, str(int(me.start) - 1), me.cmdline)  # same pid and command, earlier process
    assert not procs.is_running(recycled)
    assert not procs.signal_process(recycled, signal.SIGKILL)
    assert not procs.stop(recycled, grace=0.1)
    time.sleep(0.2)
    assert bystander.poll() is None, "an unrelated process was killed"


def test_an_ended_process_is_not_running_and_a_record_without_identity_proves_nothing():
    p = subprocess.Popen(["true"])
    ident = procs.identify(p.pid) or Identity(p.pid, "1", ("true",))
    p.wait(5)
    assert not procs.is_running(ident)
    assert Identity.from_dict({"pid": 1234}) is None  # a record from an older lab: no start time
    assert Identity.from_dict({"pid": 1, "start": "5", "cmdline": ["init"]}) is None  # never pid 1
    assert not procs.signal_process(None, signal.SIGTERM)


def test_down_leaves_a_recycled_pid_alone(tmp_path, bystander):
    """A stopped lab's records name pids; one of them now belongs to an unrelated process."""
    rec = _gone_lab_process(tmp_path)
    assert rec["ident"] and rec["ident"]["cmdline"] == ["sleep", "60"]
    # the pid was recycled: the record now names the bystander's pid (start time and command are the
    # lab process's, as recorded)
    rec["pid"] = rec["ident"]["pid"] = bystander.pid
    store = Store(tmp_path / "state.db")
    store.kv_set("proc:ns/pod-1/app", rec)
    store.close()
    daemon = procs.identify(bystander.pid).to_dict()
    daemon["start"] = str(int(daemon["start"]) - 7)  # daemon.json of a daemon long gone, pid recycled
    (tmp_path / "daemon.json").write_text(json.dumps({"pid": bystander.pid, "api_port": 9, "ident": daemon}))

    Client(tmp_path).down(timeout=1)

    time.sleep(0.3)
    assert bystander.poll() is None, "down killed a process that is not the lab's"
    store = Store(tmp_path / "state.db")
    assert store.kv_items("proc:") == {}, "the stale records are dropped"
    store.close()


def test_a_restarted_supervisor_neither_adopts_nor_kills_a_recycled_pid(tmp_path, bystander):
    rec = _gone_lab_process(tmp_path)
    rec["pid"] = rec["ident"]["pid"] = bystander.pid
    other = procs.identify(bystander.pid)
    rec["ident"]["cmdline"] = list(other.cmdline)  # even the command line matches
    if rec["ident"]["start"] == other.start:
        # a recycled pid belongs to a process that started after the lab's had ended; the two
        # started here within one clock tick, which would make them one process to the kernel's eye
        rec["ident"]["start"] = str(int(other.start) - 1)
    store = Store(tmp_path / "state.db")
    store.kv_set("proc:ns/pod-1/app", rec)
    store.kv_set("proc:ns/pod-2/app", dict(rec))  # one nothing wants any more

    sup = Supervisor(store)
    spec = ProcSpec("ns/pod-1/app", ["sleep", "60"], {"PATH": os.environ["PATH"]}, tmp_path / "pods" / "app.log")
    sup.ensure({spec.name: spec})
    try:
        started = sup.status()[spec.name]["pid"]
        assert started != bystander.pid, "adopted an unrelated process"
        sup.ensure({})  # stop everything the lab runs
        time.sleep(0.3)
        assert bystander.poll() is None, "the supervisor killed a process that is not the lab's"
        assert procs.identify(started) is None, "the lab's own process was not stopped"
    finally:
        sup.stop_all(grace=2)
        store.close()


def test_the_supervisor_adopts_its_own_process_and_down_stops_it(tmp_path):
    store = Store(tmp_path / "state.db")
    spec = ProcSpec("ns/pod-1/app", ["sleep", "60"], {"PATH": os.environ["PATH"]}, tmp_path / "pods" / "app.log")
    first = Supervisor(store)
    first.ensure({spec.name: spec})
    pid = first.status()[spec.name]["pid"]
    ident = procs.identify(pid)
    second = Supervisor(store)  # a new daemon: the old one was killed, its process runs on
    second.ensure({spec.name: spec})
    assert second.status()[spec.name]["pid"] == pid, "its own running process was not adopted"
    store.close()
    assert Client(tmp_path).down(timeout=1)
    deadline = time.time() + 5
    while procs.is_running(ident) and time.time() < deadline:
        time.sleep(0.02)
    assert not procs.is_running(ident), "down did not stop the lab's own process"
    first.procs[spec.name].popen.wait(5)  # it was this test's child: reap it


def test_a_previous_daemons_process_for_a_changed_spec_is_replaced_not_left_running(tmp_path):
    store = Store(tmp_path / "state.db")
    old_spec = ProcSpec("ns/pod-1/app", ["sleep", "60"], {"PATH": os.environ["PATH"]}, tmp_path / "app.log")
    first = Supervisor(store)
    first.ensure({old_spec.name: old_spec})
    old = procs.identify(first.status()[old_spec.name]["pid"])
    new_spec = ProcSpec(old_spec.name, ["sleep", "61"], {"PATH": os.environ["PATH"]}, tmp_path / "app.log")
    second = Supervisor(store)  # the first daemon was killed; the spec changed meanwhile
    second.ensure({new_spec.name: new_spec})
    try:
        deadline = time.time() + 5
        while procs.is_running(old) and time.time() < deadline:
            time.sleep(0.02)
        assert not procs.is_running(old), "the old process still runs beside its replacement"
        assert procs.identify(second.status()[new_spec.name]["pid"]).cmdline == ("sleep", "61")
    finally:
        second.stop_all(grace=2)
        first.procs[old_spec.name].popen.wait(5)
        store.close()
