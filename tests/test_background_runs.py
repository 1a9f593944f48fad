"""The suite's background runs (tests/background.py) under pytest-xdist: however many workers
collect a test that reads a run, the main process starts it once; a reader on any worker waits
for its files; the folder goes at the end unless a reader failed."""
from __future__ import annotations

import types

import pytest

from tests import background


@pytest.fixture
def fresh_state(monkeypatch, tmp_path):
    """Empty bookkeeping (the session's own runs are left alone) and a main process whose folder
    of runs is under tmp_path."""
    for name, value in (("_WANTED", {}), ("_STARTED", {}), ("_FAILED", set())):
        monkeypatch.setattr(background, name, value)
    main = types.SimpleNamespace(_appmesh_background=tmp_path / "runs")
    (tmp_path / "runs").mkdir()
    return main


def _worker(main, workerid: str):
    return types.SimpleNamespace(workerinput={background.BASE_KEY: str(main._appmesh_background),
                                              "workerid": workerid})


def _report(nodeid: str, failed: bool):
    return types.SimpleNamespace(nodeid=nodeid, failed=failed)


def test_a_run_wanted_by_every_worker_starts_once_and_its_readers_see_it_end(fresh_state, tmp_path):
    main = fresh_state
    counter = tmp_path / "starts"
    folders = []
    for wid in ("gw0", "gw1", "gw2"):   # each worker collects the same tests, so wants the same run
        background._WANTED.clear()
        spec = background.Spec("course", f"echo x >> {counter}\nsleep 0.3\necho 0 > {main._appmesh_background}/course/e2e.rc",
                               readers=["tests/x.py::test_reads@tests/x.py"])
        folders.append(background.want(_worker(main, wid), spec))
    assert len(set(folders)) == 1 and not (folders[0] / "started").exists()   # workers start nothing
    background.start_published(main)
    background.start_published(main)          # a second worker's collection: nothing more
    assert background.wait_started(folders[0]) == ""
    assert background.wait_for(folders[0], "e2e", timeout=30) == 0
    assert background.wait_for(folders[0], "unit", timeout=30) is None   # a phase it never had: its end says so
    assert counter.read_text() == "x\n"       # once, not once per worker

    background.record(_report("tests/x.py::test_reads", failed=False))
    background.finish(main, stop_lab=lambda folder: pytest.fail("nothing runs any more"))
    assert not main._appmesh_background.exists()


def test_a_failed_reader_keeps_its_run_and_a_run_still_going_is_stopped(fresh_state):
    main = fresh_state
    background.want(main, background.Spec("read", "echo 1 > read/e2e.rc", cwd=str(main._appmesh_background),
                                          readers=["tests/y.py::test_fails[a]"]))
    background.want(main, background.Spec("slow", "sleep 60", readers=["tests/z.py::test_other"]))
    read, slow = background.folder_of(main, "read"), background.folder_of(main, "slow")
    assert background.wait_for(read, "e2e", timeout=30) == 1
    background.record(_report("tests/y.py::test_fails[a]@tests/y.py", failed=True))   # xdist's group suffix
    stopped = []
    background.finish(main, stop_lab=stopped.append)
    assert stopped == [slow]                  # the session ended before it did: stopped, its lab too
    assert read.is_dir() and not slow.exists()


def test_a_run_that_cannot_run_here_gives_its_readers_the_reason(fresh_state):
    main = fresh_state
    folder = background.want(main, background.Spec("course", "exit 0", skip="Envoy binary not found"))
    assert background.wait_started(folder) == "Envoy binary not found"
