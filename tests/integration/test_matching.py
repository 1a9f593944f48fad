"""Gateway route matching, precedence and rewrites through a real gateway Envoy.

One virtual node (`echo`, the sample app) provides many virtual services, one per gateway
route, so the Host the app received (rewritten to the target virtual service's name by
default, APPMESH-FACTS §2.1) says which route matched, and the path it received shows the
rewrite. The gateway has no catch-all route: an unmatched request gets Envoy's 404.
"""
import pytest

from lab.bench import manifests as m

from .conftest import start_lab

pytestmark = pytest.mark.envoy

NS = "it-match"

# route name -> (match, extra gateway-route arguments)
ROUTES = {
    # one per match type
    "prefix": ({"prefix": "/pfx"}, {}),
    "exact": ({"path": {"exact": "/exact/only"}}, {}),
    "regex": ({"path": {"regex": "/rx/[0-9]+"}}, {}),
    "h-exact": ({"prefix": "/h/exact", "headers": [{"name": "x-h", "match": {"exact": "yes"}}]}, {}),
    "h-prefix": ({"prefix": "/h/prefix", "headers": [{"name": "x-h", "match": {"prefix": "abc"}}]}, {}),
    "h-suffix": ({"prefix": "/h/suffix", "headers": [{"name": "x-h", "match": {"suffix": "xyz"}}]}, {}),
    "h-regex": ({"prefix": "/h/regex", "headers": [{"name": "x-h", "match": {"regex": "v[0-9]+"}}]}, {}),
    "h-range": ({"prefix": "/h/range", "headers": [{"name": "x-n", "match": {"range": {"start": 10, "end": 20}}}]}, {}),
    "h-invert": ({"prefix": "/h/invert", "headers": [{"name": "x-env", "match": {"exact": "prod"}, "invert": True}]}, {}),
    "h-present": ({"prefix": "/h/present", "headers": [{"name": "x-flag"}]}, {}),
    "query": ({"prefix": "/q", "queryParameters": [{"name": "color", "match": {"exact": "blue"}}]}, {}),
    "query-present": ({"prefix": "/qp", "queryParameters": [{"name": "debug"}]}, {}),
    "method": ({"prefix": "/meth", "method": "POST"}, {}),
    "host-exact": ({"hostname": {"exact": "www.example.com"}}, {}),
    "host-suffix": ({"hostname": {"suffix": ".example.org"}}, {}),
    # priority beats specificity; a route without priority counts as 1000
    "p-broad": ({"prefix": "/prio"}, {"priority": 1}),
    "p-exact": ({"path": {"exact": "/prio/exact"}}, {"priority": 2}),
    "p-vip": ({"path": {"exact": "/prio/vip"}}, {"priority": 0}),
    "p-999": ({"prefix": "/mix"}, {"priority": 999}),
    "p-none": ({"prefix": "/mix/longer"}, {}),
    # ties (no priority, or the same priority): the lab's specificity rule (precedence.py)
    "t-short": ({"prefix": "/tie"}, {}),
    "t-long": ({"prefix": "/tie/long"}, {}),
    "t-exact": ({"path": {"exact": "/tie/exact"}}, {}),
    "t-regex": ({"path": {"regex": "/tie/.*"}}, {}),
    "c-plain": ({"prefix": "/cond"}, {}),
    "c-header": ({"prefix": "/cond", "headers": [{"name": "x-c", "match": {"exact": "1"}}]}, {}),
    "e-short": ({"prefix": "/eq"}, {"priority": 7}),
    "e-long": ({"prefix": "/eq/longer"}, {"priority": 7}),
    # rewrites (APPMESH-FACTS §2)
    "rw-keep": ({"prefix": "/keep"}, {"rewrite": {"prefix": {"defaultPrefix": "DISABLED"}}}),
    "rw-value": ({"prefix": "/test/"}, {"rewrite": {"prefix": {"value": "/red/"}}}),
    "rw-path": ({"path": {"exact": "/rewrite/path/blue"}}, {"rewrite": {"path": {"exact": "/blue"}}}),
    "rw-bslash": ({"path": {"exact": "/bslash"}}, {"rewrite": {"path": {"exact": "/a\\1b"}}}),
    "rw-host": ({"prefix": "/samehost"}, {"rewrite": {"hostname": {"defaultTargetHostname": "DISABLED"}}}),
}


def docs():
    out = m.base(NS) + [m.virtual_node("echo", NS), m.app("echo", NS)]
    for name, (match, extra) in ROUTES.items():
        out += [m.virtual_service(name, NS, node="echo"), m.gateway_route(name, NS, match, name, **extra)]
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with start_lab(tmp_path_factory, NS, docs(), ready=["/pfx/ready"]) as lab:
        yield lab


def route_of(r) -> str | None:
    """Which route answered: the virtual service name the Host was rewritten to."""
    assert r.status == 200, r
    host = r.host
    suffix = f".{NS}.svc.cluster.local"
    return host[: -len(suffix)] if host.endswith(suffix) else None


def hit(lab, path, headers=None, method="GET"):
    return route_of(lab.request(method, path, headers))


def miss(lab, path, headers=None, method="GET"):
    r = lab.request(method, path, headers)
    assert r.status == 404, (path, headers, r)


# ---- match types ---------------------------------------------------------------------

def test_prefix_is_a_plain_string_prefix(lab):
    assert hit(lab, "/pfx") == "prefix"
    assert hit(lab, "/pfx/a/b") == "prefix"
    assert hit(lab, "/pfxyz") == "prefix"  # not segment-aware (APPMESH-FACTS §1.3)
    miss(lab, "/pf")


def test_exact_path(lab):
    assert hit(lab, "/exact/only") == "exact"
    assert hit(lab, "/exact/only?x=1") == "exact"  # the query string is not part of the path
    miss(lab, "/exact/only/more")
    miss(lab, "/exact/onl")


def test_regex_path_must_match_the_whole_path(lab):
    assert hit(lab, "/rx/123") == "regex"
    miss(lab, "/rx/abc")
    miss(lab, "/rx/123x")


@pytest.mark.parametrize("route, header, good, bad", [
    ("h-exact", "x-h", ["yes"], ["yes!", "no"]),
    ("h-prefix", "x-h", ["abc", "abcdef"], ["xabc"]),
    ("h-suffix", "x-h", ["xyz", "123xyz"], ["xyz1"]),
    ("h-regex", "x-h", ["v1", "v42"], ["v", "xv1", "v1x"]),  # RE2, whole value
    ("h-range", "x-n", ["10", "15", "19"], ["9", "20", "abc"]),  # start inclusive, end exclusive
    ("h-invert", "x-env", ["dev", "production"], ["prod"]),
])
def test_header_matches(lab, route, header, good, bad):
    path = "/h/" + route[2:]
    for v in good:
        assert hit(lab, path, {header: v}) == route, (header, v)
    for v in bad:
        miss(lab, path, {header: v})
    if route != "h-invert":
        miss(lab, path)  # without the header


def test_a_header_without_match_block_means_present(lab):
    assert hit(lab, "/h/present", {"x-flag": ""}) == "h-present"
    assert hit(lab, "/h/present", {"x-flag": "anything"}) == "h-present"
    miss(lab, "/h/present")


def test_query_parameter_exact(lab):
    assert hit(lab, "/q?color=blue") == "query"
    assert hit(lab, "/q?size=1&color=blue") == "query"
    miss(lab, "/q?color=red")
    miss(lab, "/q")


def test_query_parameter_without_match_block_means_present(lab):
    assert hit(lab, "/qp?debug") == "query-present"
    assert hit(lab, "/qp?x=1&debug=0") == "query-present"
    miss(lab, "/qp?x=1")


def test_method(lab):
    assert hit(lab, "/meth", method="POST") == "method"
    miss(lab, "/meth", method="GET")
    miss(lab, "/meth", method="PUT")


@pytest.mark.parametrize("host, route", [
    ("www.example.com", "host-exact"),
    ("www.example.com:8088", "host-exact"),  # a port in Host still matches (the lab's decision, RM#365)
    ("api.example.org", "host-suffix"),
    ("a.b.example.org:1234", "host-suffix"),
    ("WWW.Example.COM", "host-exact"),  # host names are case-insensitive
    ("Api.EXAMPLE.org:80", "host-suffix"),
])
def test_hostname_matches(lab, host, route):
    assert hit(lab, "/anything", {"Host": host}) == route


@pytest.mark.parametrize("host", ["example.com", "wwwXexample.com", "example.org.evil", "xexample.org"])
def test_hostname_misses(lab, host):
    miss(lab, "/anything", {"Host": host})


# ---- precedence ----------------------------------------------------------------------

def test_lower_priority_value_wins_over_a_more_specific_match(lab):
    assert hit(lab, "/prio/exact") == "p-broad"  # priority 1 beats the exact path at priority 2
    assert hit(lab, "/prio/vip") == "p-vip"  # priority 0 first
    assert hit(lab, "/prio/other") == "p-broad"


def test_a_route_without_priority_is_ordered_as_1000(lab):
    assert hit(lab, "/mix/longer/x") == "p-999"


def test_ties_without_priority_longest_prefix_then_exact_first_regex_last(lab):
    assert hit(lab, "/tie/long/x") == "t-long"
    assert hit(lab, "/tie/other") == "t-short"
    assert hit(lab, "/tie/exact") == "t-exact"  # exact path before any prefix
    assert hit(lab, "/tie/zzz") == "t-short"  # prefix before regex: the regex route only sees what no prefix takes


def test_ties_more_conditions_first(lab):
    assert hit(lab, "/cond/x", {"x-c": "1"}) == "c-header"
    assert hit(lab, "/cond/x", {"x-c": "2"}) == "c-plain"
    assert hit(lab, "/cond/x") == "c-plain"


def test_equal_explicit_priority_is_broken_by_specificity(lab):
    assert hit(lab, "/eq/longer/1") == "e-long"
    assert hit(lab, "/eq/1") == "e-short"


# ---- rewrites ------------------------------------------------------------------------

@pytest.mark.parametrize("path, received", [
    ("/pfx/abc", "/abc"),
    ("/pfx", "/"),
    ("/pfx/", "/"),
    ("/pfxyz", "/yz"),  # App Mesh: /chapter1 -> /1
    ("/pfx/a?b=c", "/a?b=c"),
])
def test_default_prefix_rewrite_to_slash_and_host_to_the_virtual_service(lab, path, received):
    r = lab.get(path)
    assert r.status == 200
    assert r.path == received
    assert r.host == m.vs_host("prefix", NS)


def test_default_prefix_disabled_keeps_the_path(lab):
    r = lab.get("/keep/abc?x=1")
    assert (r.status, r.path) == (200, "/keep/abc?x=1")


def test_prefix_value_rewrite(lab):
    assert lab.get("/test/x").path == "/red/x"
    assert lab.get("/test/").path == "/red/"


def test_exact_path_rewrite(lab):
    r = lab.get("/rewrite/path/blue")
    assert (route_of(r), r.path) == ("rw-path", "/blue")
    assert lab.get("/rewrite/path/blue?x=1").path == "/blue?x=1"  # the query string is kept


def test_exact_path_rewrite_is_literal(lab):
    """A backslash in rewrite.path.exact is a character, not an RE2 group reference (it used
    to turn "/a\\1b" into no rewrite at all). The gateway's egress listener then normalises the
    path as for any request (normalize_path: a backslash becomes a slash)."""
    r = lab.get("/bslash")
    assert (route_of(r), r.path) == ("rw-bslash", "/a/1b")


def test_exact_and_regex_matches_keep_the_path(lab):
    assert lab.get("/exact/only").path == "/exact/only"
    assert lab.get("/rx/7").path == "/rx/7"


def test_hostname_rewrite_disabled_keeps_the_clients_host(lab):
    r = lab.get("/samehost/p", {"Host": "client.example.net"})
    assert r.status == 200
    assert r.host == "client.example.net"
    assert r.path == "/p"


def test_internal_routing_headers_do_not_reach_the_app_and_cannot_be_forged(lab):
    r = lab.get("/pfx/x", {"x-appmesh-lab-virtual-service": m.vs_host("exact", NS)})
    assert route_of(r) == "prefix"
    assert not [h for h in r.json()["request"]["headers"] if h.startswith("x-appmesh-lab")]


def test_unmatched_request_gets_404(lab):
    miss(lab, "/nothing/here")
