"""(c) Regression: re-executing the notebooks reproduces their committed outputs.

The committed outputs come from `appmesh-lab lessons execute` (every lesson, in order, on a
fresh local lab, through papermill). The re-execution is the end-to-end run that conftest.py starts in the
background (`appmesh-lab e2e`: all fifteen, in order, on a fresh lab, through papermill), so
the notebooks run once for both checks. Each test here waits for that run and compares the
notebook it executed with the committed one using pytest-notebook's comparison, configured as
NBRegressionFixture would be: its default post-processing (coalesce_streams), then the
replacements and ignores below and the notebook's own metadata.nbreg, if any. The cell papermill
injects after the parameters cell is taken out first (the committed notebooks run with their
defaults).

What legitimately varies is taken out by configuration, not by editing outputs:
  * DIFF_REPLACE: ports (also inside cluster names), pod-name hashes, request ids, timestamps,
    durations, snapshot versions, process ids, tool versions, the checkout's and Envoy's paths,
    and temporary paths are replaced by placeholders on both sides before comparing;
  * the outputs of cells tagged `volatile` in the lesson's source (`# %% tags=["volatile"]`:
    measured splits and timings, counters, CLI tables with ages) are not compared;
  * DIFF_IGNORE: cell and notebook metadata, tracebacks, execution counts and images.
Notebooks show manifests from manifests/: when one changes, regenerate the outputs with
`appmesh-lab lessons execute` and review the diff.
"""
import copy
import re

import nbformat
import pytest

from .conftest import NOTEBOOKS, ROOT

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

NAMES = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))

OUT = "/cells/*/outputs"
DIFF_REPLACE = (
    (OUT, r"\b(127\.0\.0\.1|localhost|::ffff:127\.0\.0\.1):\d+", r"\1:PORT"),
    (OUT, r"(_self_redirect_[a-z0-9]+_)\d+\b", r"\1PORT"),            # the gateway's egress listener port
    (OUT, r"(lds_egress_internal_)\d+\b", r"\1PORT"),                  # ... now an internal listener
    (OUT, r"/[^\s'\"|`()]*/envoy(?=[\s'\"|`)]|$)", "ENVOY_BINARY"),      # which Envoy binary runs
    (OUT, re.escape(str(ROOT)), "ROOT"),                                  # where the checkout is
    (OUT, r"-[0-9a-f]{10}-[b-z2-9]{5}\b", "-POD"),                       # pod names: <deployment>-<hash>-<suffix>
    (OUT, r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID"),
    (OUT, r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?Z?", "TIMESTAMP"),
    (OUT, r"\b\d{10}-\d+\b", "VERSION"),                                  # xDS snapshot versions
    (OUT, r"\b\d+(\.\d+)?\s?(ms|s)\b", "DURATION"),
    (OUT, r'(HTTP/[\d.]+" \d{3} \S+) \d+ \d+ \d+ (\d+|-) ', r"\1 BYTES BYTES MS MS "),  # Envoy access log line
    (OUT, r"\bpid \d+", "pid N"),
    (OUT, r"\b(Python|Envoy) \d+\.\d+(\.\d+)?", r"\1 VERSION"),
    (OUT, r"/tmp/[^\s'\"|)`]+", "TMPPATH"),
    (OUT, r"\$TMPDIR/[^\s'\"|)`]+", "TMPPATH"),
    (OUT, r"(x-envoy-upstream-service-time: |content-length: )\d+", r"\1N"),     # nb.show_request's headers
    (OUT, r"appmesh-lab-lesson/\d+-\d+", "appmesh-lab-lesson/MARK"),          # its access-log mark                         # lab.notebook.tidy's temporary paths
)
DIFF_IGNORE = ("/cells/*/outputs/*/traceback", "/cells/*/metadata", "/metadata",
               "/cells/*/outputs/*/data/image/png", "/cells/*/execution_count", "/cells/*/outputs/*/execution_count")


def volatile_outputs(nb) -> list:
    """The diff paths of the outputs of the cells tagged volatile."""
    return [f"/cells/{i}/outputs" for i, c in enumerate(nb.cells) if "volatile" in c.metadata.get("tags", [])]


def compare(committed_path, executed: nbformat.NotebookNode):
    """(filtered diff, readable diff) between a committed notebook and an executed copy of it."""
    from pytest_notebook.diffing import diff_notebooks, diff_to_string, filter_diff
    from pytest_notebook.notebook import load_notebook_with_config, regex_replace_nb
    from pytest_notebook.post_processors import load_processor
    committed, config = load_notebook_with_config(str(committed_path))
    executed = copy.deepcopy(executed)
    executed.cells = [c for c in executed.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    executed, _ = load_processor("coalesce_streams")(executed, {})
    replace = list(DIFF_REPLACE) + list(config.diff_replace)
    before, after = regex_replace_nb(committed, replace), regex_replace_nb(executed, replace)
    ignore = copy.deepcopy(config.diff_ignore)
    ignore.update(DIFF_IGNORE)
    ignore.update(volatile_outputs(committed))
    diff = filter_diff(diff_notebooks(before, after), ignore)
    return diff, diff_to_string(before, diff, use_color=False)


@pytest.mark.parametrize("name", NAMES)
def test_reexecuting_reproduces_the_committed_outputs(name, background_e2e):
    bg = background_e2e
    bg.wait()
    where = f"\n(run folder kept: {bg.folder}; its log: {bg.log})"
    executed_path = bg.runs / "latest" / f"{name}.ipynb"
    assert executed_path.is_file(), f"the e2e run did not execute {name}{where}"
    executed = nbformat.read(executed_path, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{name} failed: {errors[0]['ename']}: {errors[0]['evalue']}{where}"
    diff, text = compare(NOTEBOOKS / f"{name}.ipynb", executed)
    assert not diff, f"{name} differs from its committed outputs (appmesh-lab lessons execute " \
                     f"regenerates them):\n{text}{where}"
    bg.passed += 1


def _compare_nodes(committed: nbformat.NotebookNode, executed: nbformat.NotebookNode, folder):
    path = folder / "committed.ipynb"
    nbformat.write(committed, path)
    return compare(path, executed)


def test_the_comparison_ignores_volatile_values_and_catches_a_changed_answer(tmp_path):
    nb = nbformat.read(NOTEBOOKS / "07-test-and-verify.ipynb", as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "volatile" not in
                 c.metadata.get("tags", []) and any(o.get("output_type") == "stream" for o in c.get("outputs", [])))

    def variant(extra: str):
        copy_ = copy.deepcopy(nb)
        stream = next(o for o in copy_.cells[index].outputs if o.output_type == "stream")
        stream.text += extra
        return copy_
    committed = variant("GW = http://127.0.0.1:30080, pod product-service-abcdefabcd-xyz23, 3 s\n")
    rerun = variant("GW = http://127.0.0.1:41234, pod product-service-0123456789-bcdfg, 12.5 ms\n")
    assert not _compare_nodes(committed, rerun, tmp_path)[0]
    wrong = variant("GW = http://127.0.0.1:41234, pod product-service-0123456789-bcdfg, 12.5 ms\n503 upstream\n")
    diff, text = _compare_nodes(committed, wrong, tmp_path)
    assert diff and "+503 upstream" in text
