"""The e2e runner's machinery (lab/e2e.py, lab/kernelpool.py) on small fixture notebooks: notebooks
run on several labs at once and in kernels started ahead of time, yet every failure is still
attributed to its notebook and cell, each lab is its own, and each notebook gets a fresh kernel."""
import json
import xml.etree.ElementTree as ET

import nbformat

from lab import e2e

PROBE = ("import os, json\n"
         "print(json.dumps({'pid': os.getpid(), 'home': os.environ.get('APPMESH_LAB_HOME'), 'cwd': os.getcwd(), "
         "'lab_home_param': LAB_HOME}))")


def _notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell('TARGET = "local"\nLAB_HOME = None', metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


def _printed(path) -> dict:
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "json.dumps" in c.source)
    return json.loads("".join(o.get("text", "") for o in cell.outputs))


def test_two_labs_keep_failures_attributed_and_labs_apart(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    _notebook(books / "00-first.ipynb", PROBE, "import time\ntime.sleep(0.5)")
    _notebook(books / "01-broken.ipynb", PROBE, "print('the cell before')",
              "print('before the failure')\nraise ValueError('the gateway said 503')")
    _notebook(books / "02-third.ipynb", PROBE)
    _notebook(books / "03-cleanup.ipynb", PROBE)   # the course's last notebook: on the lab of the one before it
    lines = []
    r = e2e.run("local", {}, output_dir=tmp_path / "runs", log=lines.append, directory=books, jobs=2)

    assert [o.notebook for o in r.outcomes] == ["00-first", "01-broken", "02-third", "03-cleanup"]   # in order
    assert [o.passed for o in r.outcomes] == [True, False, True, True]
    broken = r.outcomes[1]
    assert broken.message == "cell 4: ValueError: the gateway said 503"   # papermill's injected cell counts
    # what the failing cell printed, not its neighbour's (papermill inserts two cells when a notebook fails)
    assert broken.output == "before the failure\n" and "raise ValueError" in broken.source
    failure = [c for c in ET.parse(r.directory / "junit.xml").getroot().iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failure] == ["01-broken"]
    assert failure[0].find("failure").get("message") == "cell 4: ValueError: the gateway said 503"
    report = (r.directory / "report.html").read_text()
    assert "First failure: 01-broken, cell 4</h2> (lab " in report and "<th>lab</th>" in report
    assert any("01-broken" in line and "FAILED" in line and "cell 4: ValueError" in line for line in lines)

    # two labs, each its own: the kernels of a lab see that lab's home, never the other's
    assert len(r.labs) == 2 and r.labs[0] != r.labs[1]
    assert {o.lab for o in r.outcomes} == {1, 2}
    seen = {o.notebook: _printed(r.directory / f"{o.notebook}.ipynb") for o in r.outcomes}
    for o in r.outcomes:
        assert seen[o.notebook]["home"] == r.labs[o.lab - 1], (o.notebook, o.lab, seen[o.notebook])
        assert seen[o.notebook]["lab_home_param"] is None   # the same parameters on every lab
        assert seen[o.notebook]["cwd"] == str(books)
    assert r.outcomes[3].lab == r.outcomes[2].lab   # cleanup follows the notebook before it, on its lab
    # a fresh kernel for every notebook, though started ahead of time
    assert len({s["pid"] for s in seen.values()}) == 4
    assert r.teardown == "2 local labs stopped"
    assert lines[-1] == f"report: {r.directory / 'report.html'}"


def test_a_warmed_kernel_looks_fresh_to_the_notebook(tmp_path):
    """The warm-up import runs silently: the notebook's first cell is execution 1, and nothing it
    did shows in the notebook's history."""
    books = tmp_path / "books"
    books.mkdir()
    _notebook(books / "00-a.ipynb", "import sys\nassert 'lab.notebook' in sys.modules\nprint(len(In))")
    _notebook(books / "01-b.ipynb", "print(len(In))")
    r = e2e.run("local", {}, output_dir=tmp_path / "runs", log=lambda *_: None, directory=books, jobs=1)
    assert not r.failed, [o.message for o in r.outcomes]
    for o in r.outcomes:
        nb = nbformat.read(r.directory / f"{o.notebook}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
        assert code[-1].outputs[0]["text"].strip() == str(len(code) + 1)   # In[0] is "", then one per cell: no warm-up
        assert [cell[0] for cell in o.cells] == [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    assert r.teardown == "local lab stopped"


def test_the_lanes_hand_out_notebooks_in_order_and_keep_the_last_for_the_lab_before_it():
    from pathlib import Path
    chosen = [Path(f"{i:02d}-x.ipynb") for i in range(5)]
    lanes = e2e._Lanes(chosen, "04-x.ipynb", jobs=2)
    # (notebook, kernels to start ahead: this lab's share of what is left, at most two)
    assert lanes.next(1) == (0, 2) and lanes.next(2) == (1, 1) and lanes.next(2) == (2, 1)
    assert lanes.next(1) == (3, 1)          # the notebook before the last: lane 1 will run the last
    assert lanes.next(2) == (None, 0)       # not lane 2
    assert lanes.next(1) == (4, 0)
    assert lanes.next(1) == (None, 0)
    only = e2e._Lanes(chosen[:3], "04-x.ipynb", jobs=2)   # the course's last notebook not chosen: nothing held
    assert [only.next(1)[0], only.next(2)[0], only.next(1)[0], only.next(1)[0]] == [0, 1, 2, None]


def test_a_measurement_holds_the_other_lab_still(tmp_path):
    """lab.quiet.quiet() (what latency_by_hop measures under): while it runs, no cell of the
    notebook on the other lab runs; outside it, they do run side by side."""
    books = tmp_path / "books"
    books.mkdir()
    span = "import json, time\n_t0 = time.time()\n{body}\nprint(json.dumps([_t0, time.time()]))"
    meet = ("import os, time\nopen({me!r}, 'w').close()\nwhile not os.path.exists({other!r}):\n"
            "    time.sleep(0.05)")   # both notebooks running before either goes on (kernels start unevenly)
    _notebook(books / "00-measures.ipynb", meet.format(me="measure-started", other="busy-started"),
              "import json, time\nfrom lab.quiet import quiet\nwith quiet():\n    _t0 = time.time()\n"
              "    time.sleep(1.5)\n    print(json.dumps([_t0, time.time()]))",
              span.format(body="time.sleep(1.0)"))
    _notebook(books / "01-busy.ipynb", meet.format(me="busy-started", other="measure-started"),
              *[span.format(body="time.sleep(0.2)")] * 30)
    _notebook(books / "02-cleanup.ipynb", "pass")   # the course's last: after 01-busy, on its lab
    r = e2e.run("local", {}, output_dir=tmp_path / "runs", log=lambda *_: None, directory=books, jobs=2)
    assert not r.failed, [o.message for o in r.outcomes]
    assert r.outcomes[0].lab != r.outcomes[1].lab

    def spans(name):
        nb = nbformat.read(r.directory / f"{name}.ipynb", as_version=4)
        return [json.loads(c.outputs[0]["text"]) for c in nb.cells if c.cell_type == "code" and "_t0" in c.source]
    (q0, q1), (u0, u1) = spans("00-measures")
    busy = spans("01-busy")

    def overlaps(a, b):
        return [s for s in busy if s[0] < b and s[1] > a]
    # both notebooks met before the measurement began (their first cells), so the busy one's cells
    # were waiting to run during it: they ran after it, beside the unquiet part
    assert not overlaps(q0, q1), f"cells ran on the other lab during the quiet measurement: {overlaps(q0, q1)}"
    assert overlaps(u0, u1), "without quiet() the other lab's cells run side by side (else this test proves nothing)"


def test_kernels_talk_over_unix_sockets_in_a_folder_of_their_own(tmp_path):
    """No TCP port to lose to another kernel starting at the same time, none another user can
    reach: the kernel's sockets and connection file sit in a 0700 folder, gone after it stops."""
    import os
    import stat
    import subprocess

    from lab import kernelpool

    kms = [kernelpool.start(cwd=str(tmp_path), warm="") for _ in range(2)]
    try:
        folders = [os.path.dirname(km.connection_file) for km in kms]
        assert len(set(folders)) == 2
        for km, folder in zip(kms, folders):
            info = json.loads(open(km.connection_file).read())
            assert info["transport"] == "ipc" and info["ip"].startswith(folder + os.sep), info
            assert os.stat(folder).st_mode & 0o777 == 0o700   # (jupyter adds the sticky bit)
            sockets = [f for f in os.listdir(folder) if stat.S_ISSOCK(os.stat(os.path.join(folder, f)).st_mode)]
            assert len(sockets) == 5, sockets   # shell, iopub, stdin, control, heartbeat
            if os.geteuid() == 0:
                peek = subprocess.run(["runuser", "-u", "nobody", "--", "ls", folder], capture_output=True, text=True)
                assert peek.returncode != 0 and "Permission denied" in peek.stderr, peek
        kc = kms[0].blocking_client()
        kc.start_channels()
        try:
            kc.execute("x = 6 * 7")
            assert kc.get_shell_msg(timeout=20)["content"]["status"] == "ok"
        finally:
            kc.stop_channels()
    finally:
        for km in kms:
            kernelpool.stop(km)
    assert not any(os.path.exists(f) for f in folders)
