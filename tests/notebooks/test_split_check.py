"""The split check of lesson 08 against a real router: on a fresh local lab with real Envoy, the
canary example's router set to 80/20 is refused by the check for the 50/50 it should have been,
and passes the check for the 80/20 it is."""
from collections import Counter

import pytest

pytestmark = [pytest.mark.envoy]

CANARY = "manifests/examples/canary/"
ROUTER_FILE = CANARY + "10-virtual-services.yaml"


def test_an_80_20_router_fails_the_50_50_split_check(envoy, after_background_e2e, fresh_lab, capsys):
    from lab import notebook as nb
    t = nb.make_target("local", lab_home=fresh_lab, echo=False)
    t.up()
    nb.apply(t, CANARY)
    nb.apply_text(t, nb.router_with_weights(ROUTER_FILE, "reviews-router", "weighted",
                                            {"reviews-v1": 80, "reviews-v2": 20}))
    nb.expect(t, "/", 200, gateway="gateway_ex-canary", service="reviews", timeout=30, echo=False)
    n = nb.split_sample_size([0.9, 0.5])
    hits = nb.hit(t, "/", n=n, gateway="gateway_ex-canary", concurrency=8)
    assert all(h.status == 200 for h in hits), Counter(h.status for h in hits)
    measured = nb.count(hits, "version")
    assert set(measured) <= {"v1", "v2"} and sum(measured.values()) == n, measured
    with pytest.raises(AssertionError, match="exact binomial test"):
        nb.check_split(measured, {"v1": 50, "v2": 50})
    nb.check_split(measured, {"v1": 80, "v2": 20})   # what it is: passes (fails in at most 1 run in 1,000)
