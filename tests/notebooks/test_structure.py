"""(a) The notebooks' shape: parameters, kernel metadata, the setup cell right after the
parameters, and each lesson's source notebooks/NN-name.py paired with its notebook by Jupytext
(a pair out of sync fails).
Also the pure helpers in lab/notebook/ and the e2e harness on small fixture notebooks."""
import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import nbformat
import pytest

from .conftest import NOTEBOOKS, ROOT

NAMES = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]-*.py"))   # each lesson's source
# the state each notebook starts from (lab.notebook.setup's stage)
STAGE = {"00": "00", "01": "00", "02": "01", "03": "01", "04": "03", "05": "04", "06": "05", "07": "06",
         "08": "06", "09": "06", "10": "06", "11": "06", "12": "01", "13": "06", "14": "01"}
PARAMETERS = {"TARGET": "local", "NAMESPACE": "appmesh-demo", "CLUSTER_NAME": "appmesh-gateway-demo",
              "REGION": "us-west-2", "LAB_HOME": None, "TIMEOUT_S": 30}


def _load(name):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


FIRST = ["00-welcome", "01-cluster", "02-controller", "03-mesh-nodes-services", "04-applications",
         "05-virtual-gateway", "06-gateway-routes", "07-test-and-verify", "08-traffic-management", "09-security",
         "10-observability", "11-troubleshooting", "12-leaving-app-mesh", "13-the-guides-yaml",
         "14-cleanup"]


def test_each_lesson_has_a_source_and_a_notebook_numbered_in_order():
    assert NAMES[:len(FIRST)] == FIRST
    assert sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")) == NAMES
    assert [n[:2] for n in NAMES] == [f"{i:02d}" for i in range(len(NAMES))]


@pytest.mark.parametrize("name", NAMES)
def test_each_notebook_has_kernel_metadata_and_a_parameters_cell_followed_by_setup(name):
    nb = _load(name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3" and nb.metadata["kernelspec"]["language"] == "python"
    assert nb.metadata["language_info"]["name"] == "python"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {name[:2]} · ")
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged parameters"
    params = nb.cells[tagged[0]]
    assert params.cell_type == "code"
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(params.source).body
              if isinstance(node, ast.Assign)}
    assert values == PARAMETERS
    first_code = next(c for c in nb.cells[tagged[0] + 1:] if c.cell_type == "code")
    assert "nb.setup(TARGET" in first_code.source, "the first code cell after the parameters must call setup"
    assert f'stage="{STAGE[name[:2]]}"' in first_code.source
    assert "lab_home=LAB_HOME" in first_code.source and "timeout_s=TIMEOUT_S" in first_code.source


@pytest.mark.parametrize("name", NAMES)
def test_every_notebook_checks_with_asserts(name):
    nb = _load(name)
    asserts = sum(c.source.count("assert ") for c in nb.cells if c.cell_type == "code")
    checks = sum(c.source.count(k) for c in nb.cells if c.cell_type == "code"
                 for k in ("nb.expect(", "nb.check_split(", "wait_active(", "nb.wait_pods(", "eventually("))
    assert asserts + checks >= 2, f"{name} has {asserts} asserts and {checks} checking helpers"


def test_each_lesson_is_a_source_paired_with_its_notebook_and_in_sync():
    """notebooks/NN-name.py is the source (Jupytext percent format, paired by notebooks/jupytext.toml);
    the committed .ipynb has the same cells, sources and tags (what `appmesh-lab lessons check` runs)."""
    from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file
    from jupytext.formats import long_form_multiple_formats
    from lab import lessons
    config = load_jupytext_configuration_file(find_jupytext_configuration_file(str(NOTEBOOKS)))
    formats = long_form_multiple_formats(config.default_formats(str(NOTEBOOKS / "03-mesh-nodes-services.ipynb")))
    assert sorted((f["extension"], f.get("format_name")) for f in formats) == [(".ipynb", None), (".py", "percent")]
    assert [p.stem for p in lessons.sources()] == NAMES
    assert lessons.out_of_sync() == []
    assert not (NOTEBOOKS / "build.py").exists()


def test_a_source_edited_without_syncing_is_caught_and_sync_repairs_it(tmp_path):
    import shutil
    from lab import lessons
    for name in ("06-gateway-routes", "07-test-and-verify", "08-traffic-management"):
        for ext in (".py", ".ipynb"):
            shutil.copy(NOTEBOOKS / f"{name}{ext}", tmp_path / f"{name}{ext}")
    assert lessons.out_of_sync(tmp_path) == []
    src = tmp_path / "07-test-and-verify.py"
    text = src.read_text()
    src.write_text(text.replace("# %% [markdown]\n", "# %% [markdown]\n# A sentence the notebook lacks.\n#\n", 1))
    problems = lessons.out_of_sync(tmp_path)
    assert len(problems) == 1 and problems[0].startswith("07-test-and-verify.py and 07-test-and-verify.ipynb differ")
    assert "at cell 0 (source)" in problems[0]
    (tmp_path / "08-traffic-management.py").write_text(
        (tmp_path / "08-traffic-management.py").read_text().replace('# %% tags=["volatile"]', "# %%", 1))
    assert any("08-traffic-management.py" in p and "(tags)" in p for p in lessons.out_of_sync(tmp_path))
    before = nbformat.read(tmp_path / "07-test-and-verify.ipynb", as_version=4)
    lessons.sync(tmp_path, log=lambda *a: None)
    assert lessons.out_of_sync(tmp_path) == []
    after = nbformat.read(tmp_path / "07-test-and-verify.ipynb", as_version=4)
    assert after.cells[0].source.startswith("A sentence the notebook lacks.")
    # outputs of the cells that did not change are kept, and so are their ids
    kept = [(c.id, c.outputs) for c in before.cells if c.cell_type == "code"]
    assert kept == [(c.id, c.outputs) for c in after.cells if c.cell_type == "code"]
    (tmp_path / "06-gateway-routes.py").unlink()
    assert lessons.out_of_sync(tmp_path) == ["06-gateway-routes.ipynb: no source 06-gateway-routes.py next to it"]


def test_lessons_execute_keeps_the_report_of_a_failed_lesson(tmp_path):
    """`lessons execute` printed "report: <folder>/runs/.../report.html" and removed the folder, so
    the report of a failing cell was gone; it is kept when a lesson failed, and named."""
    import shutil
    from lab import lessons
    for ext in (".py", ".ipynb"):
        shutil.copy(NOTEBOOKS / f"00-welcome{ext}", tmp_path / f"00-welcome{ext}")
    src = tmp_path / "00-welcome.py"
    src.write_text(src.read_text() + '\n# %%\nassert False, "made to fail"\n')
    said = []
    assert lessons.execute("00", directory=tmp_path, timeout=120, log=lambda *a: said.append(" ".join(map(str, a)))) == 1
    kept = [line for line in said if line.startswith("kept the run of the failed notebooks")]
    assert kept, said
    folder = Path(kept[0].rsplit(": ", 1)[1])
    try:
        reports = list(folder.glob("runs/*/report.html"))
        assert reports and "made to fail" in reports[0].read_text(), reports
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_jupytext_itself_agrees_with_the_pairing(tmp_path):
    """What Jupytext writes when it syncs a pair (JupyterLab, `jupytext --sync`) is in sync for the
    kit's check too: the two tools agree on cells, sources and tags."""
    import shutil
    import jupytext
    from lab import lessons
    name = "03-mesh-nodes-services"
    shutil.copy(NOTEBOOKS / "jupytext.toml", tmp_path)
    shutil.copy(NOTEBOOKS / f"{name}.ipynb", tmp_path)
    src = tmp_path / f"{name}.py"
    src.write_text((NOTEBOOKS / f"{name}.py").read_text().replace("\n# %%\n", "\n# %%\nx = 1  # a new line\n", 1))
    proc = subprocess.run([sys.executable, "-m", "jupytext", "--sync", str(src)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert lessons.out_of_sync(tmp_path) == []
    nb = nbformat.read(tmp_path / f"{name}.ipynb", as_version=4)
    assert any(c.source.startswith("x = 1  # a new line") for c in nb.cells)
    assert jupytext.writes(nb, fmt="py:percent") == src.read_text()   # the header carries the kernel only


def test_the_regression_diff_leaves_out_the_volatile_cells():
    from .test_regression import volatile_outputs
    for name in NAMES:
        nb = _load(name)
        volatile = [f"/cells/{i}/outputs" for i, c in enumerate(nb.cells) if "volatile" in c.metadata.get("tags", [])]
        assert volatile_outputs(nb) == volatile
    assert volatile_outputs(_load("08-traffic-management")), "lesson 08 measures splits: some cells are volatile"


def test_committed_notebooks_carry_outputs_and_no_errors():
    for name in NAMES:
        nb = _load(name)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert any(c.outputs for c in code), f"{name} has no outputs: run appmesh-lab lessons execute"
        errors = [o for c in code for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{name} was committed with an error output: {errors[0].ename}: {errors[0].evalue}"


def machine_paths(nb) -> list[str]:
    """Absolute paths of the machine that ran a notebook, found in its outputs: temporary folders,
    home folders, the checkout, the virtual environment (anything under a .venv or site-packages)."""
    import os
    import re
    import tempfile
    folders = {"/tmp", "/var/tmp", "/var/folders", "/private/var", "/home", "/root", "/Users", str(ROOT),
               tempfile.gettempdir(), os.path.realpath(tempfile.gettempdir()), os.path.expanduser("~"), sys.prefix}
    alternatives = "|".join(re.escape(f.rstrip("/")) for f in sorted(folders, key=len, reverse=True) if f != "/")
    pattern = re.compile(rf"(?<![\w$~.])(?:(?:{alternatives})(?![\w.-])|/[^\s'\"`|]*/(?:\.venv|site-packages)/)[^\s'\"`|)]*")
    found = []
    for i, c in enumerate(nb.cells):
        for o in c.get("outputs", []):
            texts = [o.get("text", "")] + [str(v) for k, v in (o.get("data") or {}).items() if k.startswith("text/")]
            found += [f"cell {i}: {m.group(0)}" for t in texts for m in pattern.finditer(t)]
    return found


@pytest.mark.parametrize("name", NAMES)
def test_no_committed_output_names_a_folder_of_the_machine_that_ran_it(name):
    found = machine_paths(_load(name))
    assert not found, f"{name}.ipynb shows absolute paths (print them through nb.tidy): {found[:5]}"


def test_the_machine_path_check_finds_each_kind_of_folder():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    lines = ["state in /tmp/appmesh-lessons-abc/lab", "python /opt/x/.venv/bin/python", f"in {ROOT}/manifests",
             "envoy /usr/lib/python3/site-packages/envoy/_bin/envoy", "~ is /root/.cache"]
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines))]
    nb.cells.append(cell)
    assert len(machine_paths(nb)) == len(lines)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="state in $LAB_HOME/run/api.sock, "
                                           "envoy $VIRTUAL_ENV/lib/python3.11/site-packages/envoy/_bin/envoy, "
                                           "./manifests, ~/.cache, /etc/appmesh-lab/certs/ca/ca.crt")]
    assert machine_paths(nb) == []


# ---- lab/notebook/ helpers ---------------------------------------------------------------

def test_binomial_p_value_is_the_exact_two_sided_test():
    from math import comb
    from lab.notebook import binomial_p_value
    # 7 heads in 10 fair tosses: P(X <= 3) + P(X >= 7) = 2 * 176 / 1024 (R: binom.test(7, 10) -> 0.3438)
    assert binomial_p_value(7, 10, 0.5) == pytest.approx(2 * sum(comb(10, k) for k in range(7, 11)) / 1024)
    assert binomial_p_value(5, 10, 0.5) == pytest.approx(1.0)
    assert binomial_p_value(0, 300, 0.0) == 1.0 and binomial_p_value(1, 300, 0.0) == 0.0
    assert binomial_p_value(300, 300, 1.0) == 1.0 and binomial_p_value(299, 300, 1.0) == 0.0


def test_the_split_check_is_sized_to_catch_a_route_twenty_points_off():
    from lab.notebook import SPLIT_ALPHA, split_power, split_sample_size
    n = split_sample_size([0.9, 0.5])
    assert 200 <= n <= 300, n
    for share in (0.9, 0.5, 0.1):
        assert split_power(n, share) >= 0.999, (share, split_power(n, share))
    assert split_power(200, 0.5) < 0.999          # 200 requests were not enough for 50/50
    assert split_power(n, 0.5, off_by=0.30) > 0.99999  # an 80/20 router where 50/50 is configured
    assert SPLIT_ALPHA == 0.001


def test_check_split_fails_an_80_20_router_where_50_50_is_configured_and_passes_a_fair_one():
    """Seeded draws of what routers answer: an 80/20 router fails the 50/50 check in every one of
    2,000 runs; a fair 50/50 router passes in (about) all but alpha of them."""
    import random
    from lab.notebook import SPLIT_ALPHA, check_split, split_sample_size
    n, rng = split_sample_size([0.9, 0.5]), random.Random(14)

    def run(p_v1):
        v1 = sum(rng.random() < p_v1 for _ in range(n))
        try:
            check_split(Counter(v1=v1, v2=n - v1), {"v1": 50, "v2": 50})
            return True
        except AssertionError as exc:
            assert "exact binomial test" in str(exc)
            return False
    assert not any(run(0.8) for _ in range(2000))
    assert sum(run(0.7) for _ in range(1000)) <= 3   # 20 points off: caught with probability >= 0.999
    fair = sum(run(0.5) for _ in range(2000))
    assert fair >= 2000 * (1 - 5 * SPLIT_ALPHA), fair


def test_check_split_measures_a_second_sample_only_when_the_first_is_rejected():
    """With `again`, a rejected sample is followed by one fresh sample, and only a second
    rejection fails the check; an accepted first sample takes no second one."""
    from lab.notebook import SPLIT_ALPHA, check_split, split_power, split_sample_size
    calls = []

    def again(counts):
        return lambda: calls.append(counts) or Counter(counts)
    rows = check_split(Counter(v1=130, v2=130), {"v1": 50, "v2": 50}, again=again(dict(v1=1, v2=1)))
    assert calls == [] and rows[0][2] == "50.0% (130/260)"
    rows = check_split(Counter(v1=90, v2=170), {"v1": 50, "v2": 50}, again=again(dict(v1=128, v2=132)))
    assert len(calls) == 1 and rows[0][2] == "49.2% (128/260)"    # the second sample decided
    with pytest.raises(AssertionError, match=r"first sample: v1: measured 34.6%.*; second sample: v1: measured 30.8%"):
        check_split(Counter(v1=90, v2=170), {"v1": 50, "v2": 50}, again=again(dict(v1=80, v2=180)))
    # two samples: the power is one sample's squared, and the lesson's N is sized for that
    n = split_sample_size([0.9, 0.5])
    one = split_power(n, 0.5, samples=1)
    assert split_power(n, 0.5) == pytest.approx(one ** 2) and one ** 2 >= 0.999
    assert split_power(n, 0.5, samples=1) > split_power(n, 0.5)
    # seeded: a fair router almost never needs the second sample to pass; a 70/30 one fails both
    import random
    rng = random.Random(7)

    def draw(p_v1):
        v1 = sum(rng.random() < p_v1 for _ in range(n))
        return Counter(v1=v1, v2=n - v1)

    def run(p_v1):
        try:
            check_split(draw(p_v1), {"v1": 50, "v2": 50}, again=lambda: draw(p_v1))
            return True
        except AssertionError:
            return False
    assert sum(run(0.7) for _ in range(500)) <= 2
    assert all(run(0.5) for _ in range(500)), SPLIT_ALPHA


def test_check_split_rows_and_messages():
    from lab.notebook import check_split
    rows = check_split(Counter(v1=181, v2=19), {"v1": 90, "v2": 10})
    assert [r[-1] for r in rows] == ["ok", "ok"] and rows[0][2] == "90.5% (181/200)"
    with pytest.raises(AssertionError, match=r"v1: measured 70.0% \(140 of 200 requests\), configured 90%: p = "):
        check_split(Counter(v1=140, v2=60), {"v1": 90, "v2": 10})
    with pytest.raises(AssertionError, match="v1: measured 0.3%"):   # one answer from v1 where 0% is configured
        check_split(Counter(v1=1, v2=299), {"v1": 0, "v2": 100})
    with pytest.raises(AssertionError, match="unexpected versions"):
        check_split(Counter(v1=199, v3=1), {"v1": 100})


def test_setup_refuses_a_stage_that_is_not_a_notebook():
    from lab.notebook import NotebookError, setup
    with pytest.raises(NotebookError, match="use 00 to 14"):
        setup("local", stage="15")
    with pytest.raises(NotebookError, match="choose local, kind or eks"):
        setup("minikube", stage="00")


def test_walkthrough_files_by_stage_cover_the_walkthrough_in_order():
    from lab.notebook import walkthrough_files
    files = walkthrough_files("06")
    assert files == sorted(f"manifests/walkthrough/{p.name}" for p in (ROOT / "manifests/walkthrough").glob("*.yaml"))
    assert walkthrough_files("04")[-1].endswith("07-review-service-app.yaml")
    assert walkthrough_files("01") == []


def test_router_with_weights_changes_only_the_weights():
    import yaml
    from lab.notebook import manifest_doc, router_with_weights
    path = "manifests/examples/canary/10-virtual-services.yaml"
    doc = yaml.safe_load(router_with_weights(path, "reviews-router", "weighted", {"reviews-v1": 50, "reviews-v2": 50}))
    before = manifest_doc(path, "VirtualRouter", "reviews-router")
    weighted = next(r for r in doc["spec"]["routes"] if r["name"] == "weighted")
    assert [w["weight"] for w in weighted["httpRoute"]["action"]["weightedTargets"]] == [50, 50]
    assert doc["spec"]["routes"][0] == before["spec"]["routes"][0]


def test_config_summary_reads_listeners_and_routes():
    from lab.notebook import config_summary
    dump = {"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": [
            {"name": "lds_ingress_127.0.0.1_8088", "active_state": {"listener": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 30080}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": {"rds": {"route_config_name": "rds_ingress_8088"}}}]}]}}}]},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": [
            {"route_config": {"name": "rds_ingress_8088", "virtual_hosts": [{"routes": [
                {"name": "r1", "match": {"prefix": "/products"},
                 "route": {"cluster": "c1", "host_rewrite_literal": "product-service.ns",
                           "regex_rewrite": {"pattern": {"regex": "^/products/*"}, "substitution": "/"}}}]}]}}]}]}
    listeners, routes = config_summary(dump)
    assert listeners == [["lds_ingress_127.0.0.1_8088", "127.0.0.1:30080", "rds_ingress_8088", "plain"]]
    assert routes == [["rds_ingress_8088", "r1", "prefix /products", "c1", "product-service.ns path ^/products/* -> /"]]


class _FakeTarget:
    name = "fake"

    def __init__(self, objects):
        self.objects = objects

    def get(self, kind, name=None, namespace=None):
        return [o for o in self.objects if o["kind"] == kind and (namespace is None or kind == "Namespace"
                                                                   or o["metadata"].get("namespace") == namespace)]


def _obj(kind, name, ns="demo", spec=None, labels=None, active=True):
    return {"kind": kind, "metadata": {"name": name, "namespace": ns, "labels": labels or {}}, "spec": spec or {},
            "status": {"conditions": [{"type": f"{kind}Active", "status": "True" if active else "False"}]}}


def test_topology_graph_follows_selectors_and_references():
    from lab.notebook import draw_topology, topology_graph
    objects = [
        {"kind": "Namespace", "metadata": {"name": "demo", "labels": {"gw": "yes"}}},
        _obj("VirtualGateway", "gw", spec={"namespaceSelector": {"matchLabels": {"gw": "yes"}}}),
        _obj("VirtualGateway", "closed", spec={}),  # no namespaceSelector: no route attaches
        _obj("GatewayRoute", "r", spec={"httpRoute": {"match": {"prefix": "/x"}, "action": {"target": {
            "virtualService": {"virtualServiceRef": {"name": "svc"}}}}}}),
        _obj("GatewayRoute", "dangling", spec={"priority": 5, "httpRoute": {"match": {"prefix": "/y"}, "action": {
            "target": {"virtualService": {"virtualServiceRef": {"name": "nope"}}}}}}, active=False),
        _obj("VirtualService", "svc", spec={"provider": {"virtualRouter": {"virtualRouterRef": {"name": "vr"}}}}),
        _obj("VirtualRouter", "vr", spec={"routes": [{"name": "w", "httpRoute": {"action": {"weightedTargets": [
            {"virtualNodeRef": {"name": "v1"}, "weight": 90}, {"virtualNodeRef": {"name": "v2"}, "weight": 10}]}}}]}),
        _obj("VirtualNode", "v1"), _obj("VirtualNode", "v2"),
    ]
    g = topology_graph(_FakeTarget(objects), "demo")
    edges = {(a, b): label for a, b, label in g["edges"]}
    assert edges[("VirtualGateway/gw", "GatewayRoute/r")] == ""
    assert edges[("VirtualGateway/gw", "GatewayRoute/dangling")] == "p5"
    assert not any(a == "VirtualGateway/closed" for a, _ in edges)
    assert edges[("GatewayRoute/r", "VirtualService/svc")] == "/x"
    assert edges[("VirtualRouter/vr", "VirtualNode/v1")] == "w:90"
    assert g["active"]["VirtualService/nope (missing)"] is False
    assert draw_topology(g)._repr_png_().startswith(b"\x89PNG")


def test_appmesh_api_guard_reports_a_missing_api_without_raising(tmp_path):
    from lab.api.credentials import ensure_profile
    from lab.notebook import appmesh_api
    ensure_profile(tmp_path, "http://127.0.0.1:9", "us-west-2")  # the lab's profile; nothing listens on port 9

    class Local:
        name = "local"

        def __init__(self, home):
            self.home = home

        def status(self):
            return {"endpoints": {"appmesh_api": "http://127.0.0.1:9"}, "daemon": {"home": str(self.home)}}
    api = appmesh_api(Local(tmp_path))
    assert not api.available and "no answer" in api.reason
    api = appmesh_api(Local(tmp_path / "elsewhere"))
    assert not api.available and "no credentials" in api.reason
    assert not appmesh_api(_FakeTarget([])).available


def test_charts_render_as_png():
    from lab.notebook import latency_histogram, split_chart
    assert split_chart([("90/10", {"v1": 90, "v2": 10}, Counter(v1=180, v2=20))])._repr_png_()[:4] == b"\x89PNG"
    assert latency_histogram([1.0, 2.0, 2.5, 3.0, 10.0])._repr_png_()[:4] == b"\x89PNG"


# ---- the e2e harness on fixture notebooks -------------------------------------------------------

def _fixture_notebook(path, code):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell('TARGET = "local"\nLAB_HOME = None', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)


def test_e2e_runner_reports_a_failing_cell_in_junit_and_html(tmp_path, monkeypatch):
    from lab import e2e
    books = tmp_path / "books"
    books.mkdir()
    _fixture_notebook(books / "00-passes.ipynb", "assert TARGET == 'local'")
    _fixture_notebook(books / "01-broken.ipynb", "print('before the failure')\nraise ValueError('the gateway said 503')")
    lines = []
    r = e2e.run("local", {"LAB_HOME": str(tmp_path / "lab")}, output_dir=tmp_path / "runs", log=lines.append,
                directory=books)
    assert [o.passed for o in r.outcomes] == [True, False]
    assert r.teardown == "2 local labs stopped"   # one lab per notebook (two cores or more)
    suite = ET.parse(r.directory / "junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = suite.findall("testcase")[1].find("failure")
    assert failure.get("message") == "cell 2: ValueError: the gateway said 503"   # papermill adds the injected cell
    report = (r.directory / "report.html").read_text()
    assert report.index("First failure: 01-broken") < report.index("<h2>Notebooks</h2>")
    assert "raise ValueError" in report and "before the failure" in report
    assert (tmp_path / "runs" / "latest").resolve() == r.directory.resolve()
    assert lines[-1] == f"report: {r.directory / 'report.html'}"
    assert any("01-broken" in line and "FAILED" in line and "ValueError" in line for line in lines)


def test_e2e_only_selects_by_number_and_rejects_unknown_ones():
    from lab.e2e import E2EError, notebooks, parse_value
    assert [p.stem for p in notebooks("3,06")] == ["03-mesh-nodes-services", "06-gateway-routes"]
    with pytest.raises(E2EError, match="no notebook numbered 42"):
        notebooks("42")
    assert parse_value("60") == 60 and parse_value("null") is None and parse_value("eks") == "eks"
    assert parse_value("true") is True and parse_value("a: b") == "a: b"


def test_the_kernel_runs_this_python():
    from lab.e2e import ensure_kernel
    assert ensure_kernel(log=lambda *_: None) == sys.executable
    assert ensure_kernel(log=lambda *_: None) == sys.executable   # idempotent


def test_cli_has_e2e_and_jupyter_verbs():
    from lab.cli import build_parser
    parser = build_parser()
    args = parser.parse_args(["e2e", "--target", "kind", "-p", "TIMEOUT_S", "60", "--only", "03,06", "--keep"])
    assert (args.target, args.parameter, args.only, args.keep) == ("kind", [["TIMEOUT_S", "60"]], "03,06", True)
    args = parser.parse_args(["jupyter", "--", "--no-browser"])
    assert args.jupyter_args == ["--no-browser"]


def test_e2e_refuses_parameters_the_lessons_would_not_see():
    """-p TARGET kind ran the lessons on the local target (--target wins), and -p TIMEOUT 60 was
    injected as a variable no lesson reads: both now stop before anything starts, saying why."""
    def e2e(*args):
        return subprocess.run([sys.executable, "-m", "lab.cli", "e2e", "--only", "00", *args], capture_output=True,
                              text=True, timeout=60)
    r = e2e("-p", "TARGET", "kind")
    assert r.returncode == 2 and "the target is chosen with --target" in r.stderr, r.stderr
    r = e2e("-p", "TIMEOUT", "60")
    assert r.returncode == 2 and "no parameter 'TIMEOUT'; did you mean TIMEOUT_S?" in r.stderr, r.stderr
    assert "e2e: 1 notebook(s)" not in r.stdout


def _label_boxes(chart):
    fig = chart.figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    texts = [t for t in fig.axes[0].texts if t.get_gid() in ("edge-label", "node-label")]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts]


def test_topology_labels_do_not_overlap_on_a_crowded_mesh():
    """Eight routes into one service and a router with four weighted targets: every edge label and
    every box label is drawn clear of every other label."""
    from lab.notebook import draw_topology, topology_graph
    objects = [{"kind": "Namespace", "metadata": {"name": "demo", "labels": {"gw": "yes"}}},
               _obj("VirtualGateway", "gw", spec={"namespaceSelector": {"matchLabels": {"gw": "yes"}}})]
    for i in range(8):
        objects.append(_obj("GatewayRoute", f"route-{i}", spec={"priority": i, "httpRoute": {
            "match": {"prefix": f"/service-path-{i}"}, "action": {"target": {"virtualService": {
                "virtualServiceRef": {"name": "svc" if i % 2 else "svc2"}}}}}}))
    objects += [_obj("VirtualService", n, spec={"provider": {"virtualRouter": {"virtualRouterRef": {"name": "vr"}}}})
                for n in ("svc", "svc2")]
    objects.append(_obj("VirtualRouter", "vr", spec={"routes": [{"name": "w", "httpRoute": {"action": {
        "weightedTargets": [{"virtualNodeRef": {"name": f"v{i}"}, "weight": 25} for i in range(4)]}}}]}))
    objects += [_obj("VirtualNode", f"v{i}") for i in range(4)]
    boxes = _label_boxes(draw_topology(topology_graph(_FakeTarget(objects), "demo")))
    assert len(boxes) >= 8 + 4 + 8
    clashes = [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]
    assert not clashes, clashes[:5]


def test_access_log_lines_give_their_response_flags():
    from lab.notebook import NotebookError, access_log_entry, explain_flag, response_flag
    line = ('[2026-12-06T14:32:07.096Z] "GET / HTTP/1.1" 404 NR 0 0 0 - "-" "curl/8.5.0" '
            '"71244f81-dbeb-4a18-8751-64e48950142e" "127.0.0.1" "-"')
    e = access_log_entry(line)
    assert (e["status"], e["flags"], e["upstream_ms"], e["user_agent"], e["upstream_host"]) == \
        ("404", "NR", "-", "curl/8.5.0", "-")
    assert response_flag(line.replace(" 404 NR ", " 503 UF,URX ")) == "UF,URX"
    assert "retry limit" in explain_flag("UF,URX") and "connection failure" in explain_flag("UF,URX")
    assert response_flag('"GET /products HTTP/1.1" 200 - 0 707 1 1') == "-"
    with pytest.raises(NotebookError, match="not an Envoy access log line"):
        response_flag("starting envoy")


def test_host_health_reads_the_admin_clusters_list_from_either_target():
    """/clusters comes as bytes from a cluster's pod proxy and as a Response from the local lab."""
    from lab.notebook import host_health
    from lab.targets.base import Response
    text = ("cds_egress_m_pricing_ns_http_8080::outlier::success_rate_average::-1\n"
            "cds_egress_m_pricing_ns_http_8080::127.0.0.1:4100::rq_total::5\n"
            "cds_egress_m_pricing_ns_http_8080::127.0.0.1:4100::rq_error::5\n"
            "cds_egress_m_pricing_ns_http_8080::127.0.0.1:4100::health_flags::/failed_outlier_check\n"
            "cds_egress_m_other_ns_http_8080::127.0.0.1:4200::health_flags::healthy\n")
    want = [{"cluster": "cds_egress_m_pricing_ns_http_8080", "host": "127.0.0.1:4100", "rq_total": 5, "rq_error": 5,
             "health_flags": "/failed_outlier_check"}]
    for raw in (text.encode(), Response(200, {}, text.encode())):
        t = type("T", (), {"admin": lambda self, proxy, path, raw=raw: raw})()
        assert host_health(t, "gw", "_pricing_") == want
    assert host_health(t, "gw", "_nothing_") == []


@pytest.mark.parametrize("name", NAMES)
def test_an_exercise_solution_is_hidden_and_checked(name):
    """An exercise's solution is a code cell tagged `solution`, collapsed in the notebook
    (jupyter.source_hidden, kept by the Jupytext pairing) and checked by an assert, so the suite
    applies the solution and the exercise is tested."""
    nb = _load(name)
    for cell in nb.cells:
        if "solution" in cell.metadata.get("tags", []):
            assert cell.cell_type == "code"
            assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, f"{name}: a solution cell is not hidden"
            assert "assert " in cell.source, f"{name}: a solution cell checks nothing"


@pytest.mark.parametrize("name", [n for n in NAMES if int(n[:2]) >= 3])
def test_each_lesson_from_03_has_an_exercise_whose_broken_answer_is_checked_first(name):
    """The learner's cell defines ANSWER and runs the check on it (the suite sees it refused),
    then the hidden solution cell asserts the check passes."""
    cells = [c for c in _load(name).cells if c.cell_type == "code"]
    at = next((i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])), None)
    assert at is not None, f"{name} has no exercise (no code cell tagged solution)"
    exercise = cells[at - 1].source
    assert "ANSWER = " in exercise and re.match(r"check_\w+\(ANSWER", exercise.splitlines()[-1]), exercise[-200:]
    assert re.search(r"assert check_\w+\(ANSWER", cells[at].source), cells[at].source


def test_exercise_findings_read_the_manifest_with_its_context():
    """The injection finding needs the namespace's labels: with the namespace file as context the
    validator finds it; the findings returned are the exercise's own."""
    from lab import notebook as nb
    text = """apiVersion: apps/v1
kind: Deployment
metadata: {name: rating-service, namespace: appmesh-demo}
spec:
  selector: {matchLabels: {app: ratings}}
  template:
    metadata: {labels: {app: ratings}}
    spec: {containers: [{name: app, image: appmesh-lab/sample-app:0.1.0}]}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata: {name: rating-service-vn, namespace: appmesh-demo}
spec:
  podSelector: {matchLabels: {app: rating-service}}
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: rating-service.appmesh-demo.svc.cluster.local}}
"""
    assert nb.findings(text) == []
    found = nb.findings(text, context=["manifests/walkthrough/00-namespace.yaml"])
    assert [(p.file, p.line, p.path) for p in found] == [("exercise.yaml", 7, "spec.template.metadata.labels")], found
    assert "no VirtualNode" in found[0].message
    fixed = text.replace("app: ratings", "app: rating-service")
    assert nb.findings(fixed, context=["manifests/walkthrough/00-namespace.yaml"]) == []


def test_an_exercise_verdict_reports_instead_of_raising(capsys):
    from lab import notebook as nb

    def fails():
        raise AssertionError("GET /x: status 404, expected 200")
    assert nb.verdict(fails, ok="it works", hint="look at the prefix") is False
    out = capsys.readouterr().out
    assert "not yet: GET /x: status 404, expected 200" in out and "hint: look at the prefix" in out
    assert nb.verdict(lambda: None, ok="it works") is True
    assert capsys.readouterr().out == "it works\n"


def test_an_exercise_check_refused_by_the_validator_prints_the_findings_and_touches_nothing(capsys):
    """nb.exercise: a manifest the validator refuses is False, with each finding's line, field and
    hint printed; the target is never asked to apply it and the check never runs."""
    from lab import notebook as nb

    class Untouched:
        def __getattr__(self, name):
            pytest.fail(f"the target was used ({name}) for a manifest the validator refuses")

    def never():
        pytest.fail("the check ran for a refused manifest")
    check_exercise = nb.exercise(Untouched(), never, ok="it works")
    assert check_exercise.__doc__.startswith("True when the manifest applies and never() holds")
    text = """apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata: {name: r, namespace: appmesh-demo}
spec:
  httpRoute:
    match: {prefix: reviews}
    action: {target: {virtualService: {virtualServiceRef: {name: review-service}}}}
"""
    assert check_exercise(text) is False
    out = capsys.readouterr().out
    assert out.startswith("not yet: the validator refuses it\n"), out
    assert "exercise.yaml line 6: spec.httpRoute.match.prefix: prefix 'reviews' must start with '/'" in out, out
    assert "hint: write /reviews" in out, out


def test_show_routes_shows_each_gateway_routes_match_and_target(monkeypatch):
    import yaml
    from lab import notebook
    from lab.notebook import display
    shown = []
    monkeypatch.setattr(display, "_display", lambda obj: shown.append(obj.data))
    notebook.show_routes("manifests/examples/path-matching/40-gateway-routes.yaml")
    text = shown[0].split("```yaml\n", 1)[1].rsplit("```", 1)[0]
    routes = {r["name"]: r for r in yaml.safe_load(text)}
    docs = [d for d in yaml.safe_load_all((ROOT / "manifests/examples/path-matching/40-gateway-routes.yaml").read_text())
            if d and d["kind"] == "GatewayRoute"]
    assert set(routes) == {d["metadata"]["name"] for d in docs}
    for d in docs:
        assert routes[d["metadata"]["name"]]["httpRoute"]["match"] == d["spec"]["httpRoute"]["match"]


def test_e2e_takes_a_cell_timeout_in_fractions_of_a_second(tmp_path):
    """--timeout is a float on the command line; papermill wants whole seconds and failed every
    notebook with a TraitError on 30.5. Lesson 00, the shortest, runs with it."""
    r = subprocess.run([sys.executable, "-m", "lab.cli", "e2e", "--only", "00", "--timeout", "30.5", "--output-dir",
                        str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "1 passed, 0 failed" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
