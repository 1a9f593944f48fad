import os
from pathlib import Path

import pytest
from hypothesis import settings

# Hypothesis fails an example that takes over 200 ms by default: a timing figure, which depends on
# how busy the machine is (the suite runs on several workers, beside labs), never on the code
# under test. Examples are still run and checked; only the clock is not.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("APPMESH_LAB_SHARED", ROOT.parent / "shared"))


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="regenerate golden files under tests/**/testdata (and remove orphans) instead of comparing")


# -- running under pytest-xdist (scripts/test.sh: -n with --dist loadfile) --------------------
# A test module's tests go to one worker together: many share a lab started once per module
# (scope="module"), and a module split over two workers would start it twice (tests/test_workers.py).
# The runs several modules read (the course, the matrix, the kind lessons, the standalone lessons,
# the small bench all) start once per session in the background, whichever worker reads them.


@pytest.fixture
def update_golden(request):
    return request.config.getoption("--update-golden")


@pytest.fixture
def root():
    return ROOT


# -- runs started once per session in the background (tests/background.py) --------------------

def pytest_runtest_logreport(report):
    """The main process sees every test's report (xdist forwards the workers'): a failed reader
    of a background run keeps the run's folder."""
    from tests import background
    background.record(report)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist controller: every worker learns the session's folder of background runs."""
    from tests import background
    node.workerinput[background.BASE_KEY] = str(background._base(node.config))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """xdist controller: a worker has collected (no test runs before every worker has): start
    the background runs its selected tests read."""
    from tests import background
    background.start_published(node.config)


def pytest_unconfigure(config):
    """The main process, at the end: stop a background run still going (the session ended early)
    and the lab it runs, and remove the runs no failed test points at."""
    from tests import background

    def stop_lab(folder):
        """Every lab home a run made in its folder (a course's first lab and the ones its runs/
        hold, the kind stand-ins', each standalone lesson's): each holds lab-home.json."""
        from lab.targets.local import LocalTarget
        for marker in sorted(folder.rglob("lab-home.json")):
            LocalTarget(home=str(marker.parent), echo=False).down()
    background.finish(config, stop_lab)
