"""scripts/nightly.sh, the nightly CI entry point: the target comes from $TARGET, so a wrong one
is named as $TARGET (not as e2e's --target, which the job never wrote), before anything is set up."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_wrong_target_is_named_as_the_variable_the_job_set():
    r = subprocess.run(["bash", str(ROOT / "scripts" / "nightly.sh"), "--only", "00"], capture_output=True, text=True,
                       env=dict(os.environ, TARGET="kinds"), timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "TARGET=kinds is not a target" in r.stderr and "local (the default), kind or eks" in r.stderr, r.stderr
    assert "==> appmesh-lab e2e" not in r.stdout   # nothing was started
