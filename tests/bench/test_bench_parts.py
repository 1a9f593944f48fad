"""Each benchmark part runs (small) and emits a well-formed JSON record with every field."""
import json
import math
import subprocess
import sys

from lab.bench import converge, dataplane, labbench, scale, translate

from .conftest import SMALL, processes_with, record_of


def _numbers_ok(obj, where="record"):
    """Every number in a record is finite (no NaN sneaks into the JSON)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _numbers_ok(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _numbers_ok(v, f"{where}[{i}]")
    elif isinstance(obj, float):
        assert math.isfinite(obj), where


def _machine_ok(rec):
    assert set(rec["machine"]) >= {"cores", "python", "envoy", "platform", "loadavg_1m"}
    assert rec["machine"]["cores"] >= 1 and rec["machine"]["python"] and rec["machine"]["envoy"]


def test_the_combined_line_is_last_and_every_part_printed_its_own(bench_run):
    combined, text, directory = bench_run
    lines = text.strip().splitlines()
    assert json.loads(lines[-1]) == json.loads(json.dumps(combined))
    assert combined["errors"] == {}
    assert combined["parts"] == list(SMALL)
    assert set(combined["met"]) == set(SMALL)
    for kind in SMALL:
        start = lines.index(f"== bench {kind} ==")
        part = lines[start + 1:]
        end = next(i for i, line in enumerate(part) if line.startswith("{"))
        assert end >= 2, f"{kind}: a table before its JSON line"
        assert json.loads(part[end])["bench"] == kind
        assert (directory / f"{kind}.json").exists()
    assert json.loads((directory / "all.json").read_text())["parts"] == list(SMALL)
    assert "samples_ms" not in json.dumps(combined)  # raw samples stay in converge.json
    for marker in (str(directory), *(f"appmesh-bench-{k}-" for k in ("converge", "scale", "dataplane", "lab"))):
        assert not processes_with(marker), f"processes left behind: {marker}"


def test_translate_record(bench_run):
    rec = record_of(bench_run, "translate")
    assert set(rec) >= set(translate.FIELDS) and rec["sizes"] == [10, 20]
    for size, r in rec["results"].items():
        assert set(r) >= set(translate.SIZE_FIELDS), size
        assert r["proxies"] == int(size) + 1
        for step in translate.STEPS:
            assert set(r[f"{step}_ms"]) == {"median", "p90"}
    _machine_ok(rec)
    _numbers_ok(rec)


def test_converge_record(bench_run):
    rec = record_of(bench_run, "converge")
    assert set(rec) >= set(converge.FIELDS)
    assert rec["changes"] == 3 and rec["weight_changes"] == 3 and list(rec["results"]) == ["10"]
    r = rec["results"]["10"]
    assert set(r) >= set(converge.SIZE_FIELDS)
    for m in converge.MEASURES:
        assert set(r[f"{m}_ms"]) >= set(converge.STAT_FIELDS), m
        # the old 2 ms probe polls one change more, among the three (routed_coarse: before/after in one run)
        assert r[f"{m}_ms"]["n"] == (1 if m.endswith("_coarse") else 3) == len(r["samples_ms"][m]), m
    assert 0 <= r["control_plane_share_p50"] <= 1 or r["control_plane_share_p50"] < 0  # a number, either way
    b = rec["daemon_apply_breakdown_ms"]
    assert b["routes"] == 10 and b["applies"] == 1 and b["total Daemon.apply (up to its answer)"] > 0
    assert b["status pass, after the answer (Daemon.flush_status)"] > 0
    assert set(rec["met"]) == {"routed_p99_10", "weights_routed_p99_10", "routed_p99_10_within_2x_floor"}
    assert rec["target"] == {"routed_p99_10_ms": 50.0, "routed_p99_10_floor_ratio_max": 2.0}
    assert r["routed_to_floor_p99_ratio"] > 0
    # the floor measured both ways in the same run: only changed types (now), every type (before)
    floor = rec["push_floor_ms"]["10"]
    assert set(floor) == {"changed_only", "every_type"}
    assert all(f["n"] == converge.QUICK_FLOOR_CHANGES and f["p50"] > 0 for f in floor.values()), floor
    _machine_ok(rec)
    _numbers_ok(rec)


def test_scale_record(bench_run):
    rec = record_of(bench_run, "scale")
    assert set(rec) >= set(scale.FIELDS) and rec["sizes"] == [10, 20]
    for size, r in rec["results"].items():
        assert set(r) >= set(scale.SIZE_FIELDS), size
        assert r["routes"] == r["virtual_services"] == r["virtual_nodes"] == int(size)
        assert r["proxies"] == int(size) + 1 and r["running_proxies"] == 2
        assert r["snapshot_bytes"] > r["gateway_snapshot_bytes"] > 0
        assert r["daemon_rss_mb"] > 0 and r["gateway_envoy_rss_mb"] > 0 and r["sidecar_envoy_rss_mb"] > 0
    assert set(rec["met"]) == {"translate_linear", "all_acked_linear", "all_acked_within_ratio"}  # no 1,000 or 5,000 here
    _machine_ok(rec)
    _numbers_ok(rec)


def test_dataplane_record(bench_run):
    rec = record_of(bench_run, "dataplane")
    assert set(rec) >= set(dataplane.FIELDS)
    names = [p["name"] for p in rec["paths"]]
    assert names[:3] == ["direct", "sidecar", "gateway"]
    assert names == list(dataplane.PATHS) or (not dataplane.nginx_path()
                                              and names == [p for p in dataplane.PATHS if "nginx" not in p])
    assert rec["load"]["tool"] == ("wrk" if dataplane.wrk_path() else "asyncio")
    for p in rec["paths"]:
        assert set(p) >= set(dataplane.PATH_FIELDS), p["name"]
        assert p["requests"] > 0 and p["rps"] > 0 and p["non_2xx"] == 0, p
        # the light load: one connection, on every path, its own latency and CPU figures
        assert set(p["light"]) >= set(dataplane.LIGHT_FIELDS) and p["light"]["connections"] == 1, p["name"]
        assert p["light"]["requests"] > 0 and p["light"]["non_2xx"] == 0, p
        assert set(p["light"]["cpu_us_per_request"]) == set(dataplane.ON_PATH[p["name"]]), p["name"]
    assert rec["paths"][0]["rps_ratio"] == 1.0 and rec["paths"][0]["added_p50_ms"] == 0
    assert rec["paths"][0]["light"]["added_p50_ms"] == 0
    assert set(rec["met"]) == {"gateway_rps_at_least_nginx", "gateway_added_p50_within_nginx"}
    assert rec["target"]["added_p50_at"] == "light"
    if "nginx" in names:
        assert all(isinstance(v, bool) for v in rec["met"].values())
        by = {p["name"]: p for p in rec["paths"]}
        # the p50 target is judged on the light load's figures
        assert rec["met"]["gateway_added_p50_within_nginx"] == (
            by["gateway"]["light"]["added_p50_ms"] <= by["nginx"]["light"]["added_p50_ms"] + dataplane.TARGET_P50_SLACK_MS)
        # the floors: one bare Envoy hop (x 2) against one nginx hop, from the rows of the same run
        fl = rec["floors"]
        assert fl["envoy_hop_cpu_us"] == by["envoy"]["cpu_us_per_request"]["envoy"] > 0
        assert fl["two_envoy_hops_cpu_us"] == round(2 * fl["envoy_hop_cpu_us"], 1)
        assert fl["nginx_hop_cpu_us"] == by["nginx"]["cpu_us_per_request"]["nginx"] > 0
        assert fl["two_envoy_hops_exceed_nginx"] == (fl["two_envoy_hops_cpu_us"] > fl["nginx_hop_cpu_us"])
        # the gateway Envoy's shape, bare: what its second routing stage adds to one hop
        assert fl["envoy_2stage_cpu_us"] == by["envoy-2stage"]["cpu_us_per_request"]["envoy-2stage"] > 0
        assert fl["second_stage_cpu_us"] == round(fl["envoy_2stage_cpu_us"] - fl["envoy_hop_cpu_us"], 1)
    # CPU per request from /proc for every process on each path; the Envoys' threads and pinning
    on_path = {p["name"]: set(p["cpu_us_per_request"]) for p in rec["paths"]}
    assert on_path["gateway"] == {"gateway", "sidecar", "upstream"} and on_path["direct"] == {"upstream"}
    assert on_path["envoy-envoy"] == {"envoy2", "envoy", "upstream"}
    assert all(v > 0 for p in rec["paths"] for v in p["cpu_us_per_request"].values()), rec["paths"]
    for envoy in ("gateway", "sidecar"):
        e = rec["envoys"][envoy]
        assert e["concurrency"] == 1 and e["worker_threads"] == 1 and e["cpus_allowed"], e
    _machine_ok(rec)
    _numbers_ok(rec)


def test_cpu_time_per_process_is_read_finer_than_a_clock_tick():
    """A process that uses 3 ms of CPU in a measured run is counted 3 ms, not 0 or 10 (the
    clock ticks of /proc/<pid>/stat): a short run on a busy machine gave a path's process 0 us
    per request. The child burns CPU on request and says how much its own clock counted."""
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "for line in sys.stdin:\n"
        "    t0 = time.process_time()\n"
        "    while time.process_time() - t0 < 0.003: pass\n"
        "    print(time.process_time() - t0, flush=True)\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for i in range(4):
            before = dataplane._cpu_s(child.pid)
            child.stdin.write("burn\n")
            child.stdin.flush()
            burnt = float(child.stdout.readline())
            used = dataplane._cpu_s(child.pid) - before
            if i > 0:   # (the first answer comes after the interpreter's start-up)
                assert burnt <= used < burnt + 0.001, (used, burnt)   # its own count, plus reading a line
    finally:
        child.stdin.close()
        child.wait(10)
    assert dataplane._cpu_s(child.pid) == 0.0   # gone


def test_lab_record(bench_run):
    rec = record_of(bench_run, "lab")
    assert rec["rounds"] == 1
    assert set(rec["median"]) >= {"up_s", "apply_to_answering_s", "daemon_mb", "envoys_mb", "apps_mb", "total_mb"}
    assert set(rec["met"]) == set(rec["targets"])
    assert labbench.ROUTES
    _machine_ok(rec)
    _numbers_ok(rec)


def test_plots_are_pngs(bench_run):
    _, _, directory = bench_run
    pngs = {p.name for p in directory.glob("*.png")}
    assert pngs >= {"translate.png", "converge-route.png", "converge-weights.png", "scale.png", "dataplane.png",
                    "lab.png"}
    for name in pngs:
        assert (directory / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_results_page_from_the_run(bench_run, tmp_path):
    from lab.bench import docs
    _, _, directory = bench_run
    page = docs.write(directory, page=tmp_path / "benchmarks.md", images=tmp_path / "img" / "bench")
    text = page.read_text()
    for title in ("## Machine", "## Targets", "## Translation", "## Convergence", "## Scale", "## Data plane",
                  "## Lab start-up and memory"):
        assert title in text, title
    assert "appmesh-lab bench all --write-docs" in text and "shared 2-core" in text
    for png in (tmp_path / "img" / "bench").glob("*.png"):
        assert f"(img/bench/{png.name})" in text
    assert "dataplane: gateway path adds at p50" in text and "converge: new gateway route, 10 routes, p99" in text
    assert "## Earlier figures (before)" in text  # before and after stay side by side after a refresh


def test_results_page_shows_the_suite_record(tmp_path):
    """The suite part (lab/bench/suite.py) is not run here (it takes minutes): its record,
    built by its own pure function, renders with its target row."""
    from lab.bench import docs, suite
    rounds = [{"wall_s": 50.0, "notebooks": [{"notebook": "00-setup", "seconds": 4.0, "passed": True},
                                             {"notebook": "01-mesh", "seconds": 6.0, "passed": True}]}]
    kernel = {"start_stop_s": 1.2, "rounds": 3}
    rec = suite.build_record(rounds, kernel, True, None, [])
    text, targets = docs.suite(rec)
    assert "00-setup" in text and "1.20 s" in text   # the kernel start + stop, measured apart
    assert targets[0][:4] == ["suite: wall time", "<= 60 s", "50.0 s", "met"]
