"""The CLI: one part alone prints its table, ends with its JSON line and writes its results;
the load generators' pieces that the small run does not reach."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lab.bench import dataplane

ROOT = Path(__file__).resolve().parents[2]


def test_a_part_alone_through_the_cli_writes_its_results(tmp_path):
    p = subprocess.run([sys.executable, "-m", "lab.cli", "bench", "translate", "--sizes", "10", "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.strip().splitlines()
    assert len(lines) > 2
    rec = json.loads(lines[-1])
    assert rec["bench"] == "translate" and rec["sizes"] == [10]
    assert json.loads((tmp_path / "translate.json").read_text()) == rec
    assert (tmp_path / "translate.png").exists()
    assert "translate.json" in p.stderr


def test_bench_all_is_offered_with_every_part():
    p = subprocess.run([sys.executable, "-m", "lab.cli", "bench", "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0
    for kind in ("translate", "converge", "scale", "dataplane", "lab", "all", "docs"):
        assert kind in p.stdout, kind


WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:8080/r0/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.01ms    1.10ms  19.12ms   90.00%
    Req/Sec     4.17k   250.00     4.50k    70.00%
  Latency Distribution
     50%    1.54ms
     75%    2.10ms
     90%  850.00us
     99%    1.20s
  12450 requests in 3.00s, 1.80MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   4149.63
Transfer/sec:    614.00KB
"""


def test_wrk_output_is_read_with_its_units():
    r = dataplane.parse_wrk(WRK_OUTPUT)
    assert r == {"rps": 4149.63, "p50_ms": 1.54, "p99_ms": 1200.0, "requests": 12450, "non_2xx": 4, "errors": 3}


def test_the_asyncio_load_generator_against_the_sample_app(tmp_path):
    from lab.runtime.envoy import free_port
    from lab.targets.base import TargetError
    from lab.targets.base import request
    port = free_port()
    app = subprocess.Popen([sys.executable, "-m", "lab.apps.sample"], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL,
                           env=dict(os.environ, PORT=str(port), HOST="127.0.0.1", PYTHONPATH=str(ROOT)))
    try:
        deadline = time.time() + 15
        while True:
            try:
                request("127.0.0.1", port, "GET", "/ping", None, None, 1)
                break
            except TargetError:
                assert time.time() < deadline, "the sample app did not start"
                time.sleep(0.05)
        r = dataplane.run_asyncio(port, connections=4, duration=0.5)
    finally:
        app.terminate()
        app.wait(10)
    assert set(r) == {"rps", "p50_ms", "p99_ms", "requests", "non_2xx", "errors"}
    assert r["requests"] > 0 and r["errors"] == 0 and r["non_2xx"] == 0
    assert 0 < r["p50_ms"] <= r["p99_ms"]


def _row(name, rps, cpu, light_p50=0.1):
    return {"name": name, "rps": rps, "added_p50_ms": 1.0, "cpu_us_per_request": cpu,
            "proxy_cpu_us_per_request": sum(v for k, v in cpu.items() if k != "upstream"),
            "light": {"added_p50_ms": light_p50}}


def test_the_floor_says_when_two_envoy_hops_cost_more_than_one_nginx_hop():
    by = {"gateway": _row("gateway", 9000, {"gateway": 60, "sidecar": 30, "upstream": 7}, 0.2),
          "sidecar": _row("sidecar", 30000, {"sidecar": 30, "upstream": 7}),
          "nginx": _row("nginx", 40000, {"nginx": 17, "upstream": 7}, 0.05),
          "envoy": _row("envoy", 35000, {"envoy": 25, "upstream": 7}),
          "envoy-2stage": _row("envoy-2stage", 20000, {"envoy-2stage": 40, "upstream": 7}),
          "envoy-envoy": _row("envoy-envoy", 15000, {"envoy2": 25, "envoy": 25, "upstream": 7}),
          "nginx-nginx": _row("nginx-nginx", 25000, {"nginx2": 17, "nginx": 17, "upstream": 7})}
    fl = dataplane.floors(by)
    assert fl["two_envoy_hops_cpu_us"] == 50 and fl["nginx_hop_cpu_us"] == 17 and fl["two_envoy_hops_exceed_nginx"]
    assert fl["gateway_rps_vs_nginx_nginx"] == 0.36 and fl["envoy_envoy_rps_vs_nginx_nginx"] == 0.6
    met = {"gateway_rps_at_least_nginx": False, "gateway_added_p50_within_nginx": True}
    text = "\n".join(dataplane.verdict_lines(by, met, fl))
    assert "out of reach on this machine" in text and "50 us" in text and "(17 us)" in text
    assert "+0.200 vs +0.050 ms met" in text and "nginx -> nginx: 9000 vs 25000" in text
    assert fl["second_stage_cpu_us"] == 15 and "40 us/req, the second stage +15 us over one bare hop" in text
    assert fl["gateway_vs_bare_2stage"] == 1.5 and fl["sidecar_vs_bare_hop"] == 1.2
    assert "the lab's gateway Envoy costs 1.50x its bare shape, its sidecar 1.20x a bare hop" in text
    # an Envoy hop cheaper than half an nginx hop: no such claim
    by["envoy"]["cpu_us_per_request"]["envoy"] = 8
    fl = dataplane.floors(by)
    assert fl["two_envoy_hops_exceed_nginx"] is False
    assert "out of reach" not in "\n".join(dataplane.verdict_lines(by, met, fl))


def test_an_unknown_path_is_refused_before_anything_starts():
    import pytest

    from lab.runtime.client import LabError
    with pytest.raises(LabError, match="unknown path.*bogus.*the paths are direct, sidecar"):
        dataplane.run(paths=["gateway", "bogus"])
