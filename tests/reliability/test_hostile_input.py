"""Hostile input, in this process (no lab needed): the corpus under corpus/ is what make_corpus.py
writes, it covers every family issue 9 names, and the validator rejects every hostile manifest with
a clear finding (file, field path, message, hint) quickly and without raising; hypothesis-generated
documents never make it raise either.

The same corpus also goes through a running lab's API in test_scenarios.py.
"""
import importlib.util
import re
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings

from lab.bench import reliability as rel
from lab.model import Problem, validate_texts

pytestmark = pytest.mark.reliability

CASES = rel.load_corpus()
MANIFESTS = [c for c in CASES if c.kind == "manifest"]
REQUESTS = [c for c in CASES if c.kind == "request"]
CONFLICTS = [c for c in CASES if c.kind == "conflict"]
SLOW_S = 5.0  # one validation of one hostile input; the bench judges < 2 s on a quiet machine


def _make_corpus():
    spec = importlib.util.spec_from_file_location("make_corpus", rel.CORPUS.parent / "make_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_corpus_is_what_make_corpus_writes():
    files = _make_corpus().render()
    on_disk = {f.name: f.read_bytes() for f in rel.CORPUS.iterdir()}
    assert sorted(on_disk) == sorted(files), "run: python tests/reliability/make_corpus.py"
    differ = [n for n in files if files[n] != on_disk[n]]
    assert not differ, f"stale corpus files {differ[:5]}; run: python tests/reliability/make_corpus.py"


def test_the_corpus_holds_at_least_200_cases_of_every_family():
    assert len(CASES) >= 200
    assert len(MANIFESTS) >= 150 and len(REQUESTS) >= 50 and len(CONFLICTS) >= 2
    families = {  # issue 9's list -> a file-name pattern that must match at least one case
        "deep nesting": r"deep", "huge strings": r"huge|long|over-4mib", "wrong types": r"-type-|-int\.|-array\.",
        "YAML bombs and anchors": r"yaml-.*(laughs|anchor|alias)", "path separators in names": r"name-.*(slash|traversal)",
        "control characters in names": r"name-.*(control|nul|newline|tab)",
        "catastrophic regexes": r"regex", "duplicate keys": r"duplicate", "unknown kinds": r"kind",
        "conflicting concurrent applies": r"conflict", "App Mesh API requests": r"appmesh-",
    }
    missing = [f for f, pat in families.items() if not any(re.search(pat, c.name) for c in CASES)]
    assert not missing, f"no corpus case for: {missing}"
    assert sum(1 for c in REQUESTS if c.request.get("target") == "appmesh") >= 20


STORED_FILES = {r.file for r in rel.walkthrough_resources()}


def _finding_is_clear(p: Problem, file: str) -> bool:
    """Names the file (the input's, or a stored resource's that the input would break: a second mesh
    taking its namespace), a field path (may be "" for the document), a message and a hint."""
    return (p.file == file or p.file in STORED_FILES) and isinstance(p.path, str) and p.message.strip() != "" \
        and p.hint.strip() != "" and "Traceback" not in p.message


@pytest.fixture(scope="module")
def validated():
    """Every corpus manifest through the validator once, on the walkthrough's world as the lab has
    it: (case, result, seconds). validate_texts must not raise."""
    existing = rel.walkthrough_resources()
    out = []
    for case in MANIFESTS:
        t0 = time.monotonic()
        result = validate_texts([(case.name, case.text)], complete=True, existing=existing)
        out.append((case, result, time.monotonic() - t0))
    return out


def test_every_hostile_manifest_is_rejected_with_a_clear_finding(validated):
    bad = []
    for case, result, seconds in validated:
        errors = result.errors
        if case.expect == "rejected":
            if not errors:
                bad.append((case.name, "accepted"))
            elif not all(_finding_is_clear(p, case.name) for p in errors):
                bad.append((case.name, [str(p) for p in errors if not _finding_is_clear(p, case.name)][:2]))
        if seconds > SLOW_S:
            bad.append((case.name, f"took {seconds:.2f} s"))
    assert not bad, f"{len(bad)} of {len(MANIFESTS)} corpus manifests: {bad[:10]}"
    assert sum(1 for c in MANIFESTS if c.expect == "rejected") >= 150


def test_rejections_point_at_the_field_and_line(validated):
    """A finding about one field says which: most rejections carry a field path and a line."""
    with_path = with_line = n = 0
    for case, result, _ in validated:
        if case.expect != "rejected":
            continue
        n += 1
        with_path += any(p.path for p in result.errors)
        with_line += any(p.line > 0 for p in result.errors)
    assert with_path >= 0.75 * n, f"only {with_path} of {n} rejections name a field path"
    assert with_line >= 0.9 * n, f"only {with_line} of {n} rejections name a line"


@pytest.mark.parametrize("name", ["type-gatewayroute-spec-httpRoute-match-prefix-list",
                                  "name-slash-gatewayroute", "regex-invalid-lookahead"])
def test_a_few_findings_say_what_is_wrong(name):
    case = next(c for c in MANIFESTS if name in c.name and c.expect == "rejected")
    errors = validate_texts([(case.name, case.text)], complete=True, existing=rel.walkthrough_resources()).errors
    assert errors
    text = " ".join(f"{p.path} {p.message} {p.hint}" for p in errors).lower()
    expected = {"type-gatewayroute-spec-httpRoute-match-prefix-list": ("prefix", "string"),
                "name-slash-gatewayroute": ("name",), "regex-invalid-lookahead": ("lookaround",)}[name]
    assert all(w in text for w in expected), [str(p) for p in errors]


def test_request_cases_are_well_formed():
    """Every API case names a method and a path (or raw bytes) and what it expects."""
    for case in REQUESTS:
        rq = rel._case_request(case)
        assert rq["raw"] is not None or (rq["method"] and rq["path"].startswith("/")), case.name
        assert case.expect in ("rejected", "unchanged", "any"), case.name
    for case in CONFLICTS:
        valid = [validate_texts([("v.yaml", v)]) for v in case.request["versions"]]
        invalid = [validate_texts([("v.yaml", v)]) for v in case.request["invalid"]]
        assert all(not r.errors for r in valid) and all(r.errors for r in invalid), case.name


def test_the_seeded_mutator_is_repeatable_and_never_crashes_the_validator():
    import random
    a = [rel.mutate(random.Random(7), k) for k in range(40)]
    b = [rel.mutate(random.Random(7), k) for k in range(40)]
    assert a == b
    recs = [rel.validator_case(f"m{k}", [(f"m{k}.yaml", t)], "any") for k, t in enumerate(a)]
    assert not [r for r in recs if r["crash"]]
    assert sum(r["rejected"] for r in recs) >= 20  # mutations mostly break something


DOCUMENTS, _ = rel._hyp_strategies()


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(DOCUMENTS)
def test_hypothesis_documents_never_make_the_validator_raise(text):
    t0 = time.monotonic()
    result = validate_texts([("hyp.yaml", text)], complete=True, existing=rel.walkthrough_resources())
    assert time.monotonic() - t0 < SLOW_S
    for p in result.errors:
        assert isinstance(p, Problem) and p.file == "hyp.yaml" and p.message.strip() and p.hint.strip(), str(p)


def test_clear_is_judged_on_message_and_hint():
    assert rel._clear([{"severity": "error", "message": "m", "hint": "h"}])
    assert not rel._clear([{"severity": "error", "message": "m", "hint": ""}])
    assert not rel._clear([])
    assert not rel._clear([{"severity": "warning", "message": "m", "hint": "h"}])


def test_the_results_page_keeps_the_text_around_its_section(tmp_path):
    record = {"quick": True, "date": "2026-01-01", "seconds": 1.0, "met": False, "unmet": ["x"],
              "machine": {"cores": 2, "cpu": "cpu", "memory_gb": 4.0, "python": "3.11", "envoy": "1.40.0",
                          "system": "Linux"},
              "scenarios": {"crash": {"trials": 3, "documents": 10, "apply_s": 0.1, "outcomes": {"all": 1, "none": 2},
                                      "seconds": 2.0,
                                      "checks": [rel.check("partial applies after a SIGKILL", 1, "0", False),
                                                 rel.check("trials", "1 / 2", "reported", None, "a | b")]}}}
    page = tmp_path / "reliability.md"
    page.write_text("# Title\n\nintro\n")
    rel.write_results_page(record, page)
    rel.write_results_page(record, page)  # again: the section is replaced, not added
    text = page.read_text()
    assert text.startswith("# Title\n\nintro\n") and text.count(rel.BEGIN) == 1
    assert "| partial applies after a SIGKILL | 1 | 0 | **no** |" in text
    assert "a \\| b" in text and "--scenario crash" in text and "2 cores (cpu), 4.0 GB RAM" in text
    assert Counter(line.count("|") for line in text.splitlines() if line.startswith("| partial"))[6] == 1
