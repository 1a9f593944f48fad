"""Regular expressions in matches run in Envoy's RE2 engine: the validator accepts what RE2
compiles and rejects, with the reason, what RE2 would refuse (Envoy would NACK the route) — found
by walking Python's parse tree of the pattern, not by searching the text."""
import sys

import pytest

from lab.model import validate_texts
from lab.model.schema import valid_re2ish


@pytest.mark.parametrize("pattern", [
    r"^/products/[0-9]+$", r"(?i)abc", r"a{2,5}", r"x{1000}", r"(a{10}){100}", r"(?P<id>[a-z]+)/x", r"[^/]+",
    r"\d+\.\w*", r"(?s).", r"(?m)^a$", r"(a|b)*c", r"(?:x|y)+?", r"\(\?=literal\)", r"[(?=]", r"\\1",
    r"[(?#]", r"a\(?#", r"[]](?:x)", r"[^]\]]+",
])
def test_patterns_re2_compiles_are_accepted(pattern):
    assert valid_re2ish(pattern) is None


@pytest.mark.parametrize("pattern,reason", [
    (r"(?=a)b", "lookaround"),
    (r"(?!a)b", "lookaround"),
    (r"(?<=a)b", "lookaround"),
    (r"(?<!a)b", "lookaround"),
    (r"(a)\1", "backreference"),
    (r"(?P<n>a)(?P=n)", "backreference"),
    (r"(a)?(?(1)b|c)", "backreference"),
    (r"(?>a+)b", "atomic group"),
    (r"a++", "possessive"),
    (r"a*+b", "possessive"),
    (r"(ab)?+", "possessive"),
    (r"a\Z", r"\Z"),
    (r"(?x)a b", "flag"),
    (r"(?a)\w", "flag"),
    (r"(?x:a b)", "flag"),
    (r"a{1001}", "repeats more than 1000"),
    (r"((a{10}){10}){11}", "repeats more than 1000"),
    (r"(?#note)a", "comment group"),
    (r"[a](?#note)", "comment group"),
    (r"(", "not a valid regular expression"),
    (r"[z-a]", "not a valid regular expression"),
    (r"*a", "not a valid regular expression"),
])
def test_patterns_re2_refuses_are_rejected_with_the_reason(pattern, reason):
    if sys.version_info < (3, 11) and reason in ("atomic group", "possessive"):
        reason = "not a valid regular expression"  # Python 3.10 does not parse them at all
    err = valid_re2ish(pattern)
    assert err is not None and reason in err, err


def test_the_construct_is_found_where_a_text_search_would_miss_it():
    """Deep inside groups and alternations, after escapes that look alike."""
    assert "lookaround" in valid_re2ish(r"x(y|(z(?=w)))")
    assert "possessive" in valid_re2ish(r"(a|(b|c++))")
    assert "repeats" in valid_re2ish(r"(x|(y{40}){30})")
    assert valid_re2ish(r"\(\?>not atomic\)") is None


def test_a_pattern_nested_beyond_pythons_recursion_is_refused_not_raised():
    err = valid_re2ish("(" * 3000 + "a" + ")" * 3000)
    assert err is not None


@pytest.mark.parametrize("field,pattern", [("path", "/(?>a+)"), ("header", "(a)\\1")])
def test_a_gateway_route_with_such_a_regex_gets_a_finding_at_the_field(field, pattern):
    if field == "path":
        match = f"{{path: {{regex: '{pattern}'}}}}"
        path = "spec.httpRoute.match.path.regex"
    else:
        match = f"{{prefix: /, headers: [{{name: x-a, match: {{regex: '{pattern}'}}}}]}}"
        path = "spec.httpRoute.match.headers[0].match.regex"
    text = f"""apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata: {{name: r, namespace: ns}}
spec:
  httpRoute:
    match: {match}
    action: {{target: {{virtualService: {{virtualServiceRef: {{name: vs}}}}}}}}
"""
    errors = validate_texts([("r.yaml", text)]).errors
    assert [p.path for p in errors] == [path], [str(p) for p in errors]
    assert errors[0].line == 6 and "RE2" in errors[0].message and errors[0].hint
