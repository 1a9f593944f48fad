import pytest

from tests.runtime.walkthrough import running_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running local lab with its own state directory; stopped (and checked for leftovers) after."""
    with running_lab(tmp_path_factory.mktemp("lab")) as t:
        yield t
