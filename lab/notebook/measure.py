"""Judging what traffic measured: weighted splits (exact binomial test) and latency per hop."""
from __future__ import annotations

import math
from collections import Counter
from typing import Callable

from .common import NotebookError
from .traffic import Hit, gateway_address, hit


def count(hits: list[Hit], field: str = "version") -> Counter:
    """How many answers had each value of `field` (version, service, status, path)."""
    return Counter(getattr(h, field) for h in hits)


SPLIT_ALPHA = 0.001   # one sample's test rejects a correct router in at most 1 run in 1,000
SPLIT_SAMPLES = 2     # the check fails only if a second, fresh sample is rejected too (alpha ** 2)
SPLIT_OFF_BY = 0.20   # ... and a router 20 points off fails it with probability >= SPLIT_POWER
SPLIT_POWER = 0.999


def _binom_pmf(n: int, p: float) -> list[float]:
    """P(X = k) for k = 0..n, X ~ Binomial(n, p)."""
    if p <= 0 or p >= 1:
        return [1.0 if k == (0 if p <= 0 else n) else 0.0 for k in range(n + 1)]
    lp, lq = math.log(p), math.log1p(-p)
    lg = math.lgamma(n + 1)
    return [math.exp(lg - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq) for k in range(n + 1)]


def binomial_p_value(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial test: the probability, if the true share were p, of a count at
    most as likely as k (the method of R's binom.test and scipy's binomtest)."""
    pmf = _binom_pmf(n, p)
    limit = pmf[k] * (1 + 1e-7)
    return min(1.0, sum(q for q in pmf if q <= limit))


def split_power(n: int, share: float, off_by: float = SPLIT_OFF_BY, alpha: float = SPLIT_ALPHA,
                samples: int = SPLIT_SAMPLES) -> float:
    """The probability that the split check fails a route whose true share is `off_by` away from
    the configured `share` (the worse of the two directions that exist), with n requests per
    sample: every one of `samples` independent samples must be rejected, so it is one sample's
    power to the power `samples`."""
    pmf0 = _binom_pmf(n, share)
    order = sorted(range(n + 1), key=lambda k: pmf0[k])
    reject, total = set(), 0.0
    for k in order:   # the p-value of k is the sum of every pmf0 value not above pmf0[k]
        total += pmf0[k]
        if total < alpha * (1 - 1e-9):
            reject.add(k)
    powers = []
    for wrong in (share - off_by, share + off_by):
        if 0 <= wrong <= 1:
            pmf1 = _binom_pmf(n, wrong)
            powers.append(sum(pmf1[k] for k in reject) ** samples)
    return min(powers) if powers else 1.0


def split_sample_size(shares, off_by: float = SPLIT_OFF_BY, alpha: float = SPLIT_ALPHA,
                      power: float = SPLIT_POWER, step: int = 10) -> int:
    """The smallest number of requests (a multiple of `step`) with which the split check fails a
    route off by `off_by` with at least `power`, for every configured share in `shares`."""
    n = step
    while any(split_power(n, s, off_by, alpha) < power for s in shares if 0 < s < 1):
        n += step
    return n


def _judge(measured: Counter, weights: dict, alpha: float) -> tuple[list, list]:
    """One sample's exact binomial tests: the table's rows and the rejections (messages)."""
    n = sum(measured.values())
    total = sum(weights.values())
    level = alpha / len(weights) if len(weights) > 2 else alpha   # two versions: one test, not two
    rows, bad = [], []
    for key, w in weights.items():
        expected = w / total
        k = measured.get(key, 0)
        pv = binomial_p_value(k, n, expected)
        ok = pv >= level
        rows.append([key, f"{expected:.0%}", f"{k / n:.1%} ({k}/{n})", f"{pv:.3g}", "ok" if ok else "REJECTED"])
        if not ok:
            bad.append(f"{key}: measured {k / n:.1%} ({k} of {n} requests), configured {expected:.0%}: "
                       f"p = {pv:.2g} < alpha {level:g} (exact binomial test)")
    unexpected = set(measured) - set(weights)
    assert not unexpected, f"answers from unexpected versions: {unexpected}"
    return rows, bad


def check_split(measured: Counter, weights: dict, alpha: float = SPLIT_ALPHA,
                again: Callable[[], Counter] | None = None) -> list:
    """Judge each version's count by an exact two-sided binomial test against its configured
    share, at level alpha (divided among the versions: Bonferroni, so one sample's check keeps
    alpha). A configured 0% or 100% allows no exception.

    With `again` (a function that measures a fresh sample of the same size), a rejected sample
    is not the verdict yet: the check measures once more and fails only if that sample is
    rejected too. A correct router then fails in at most alpha ** 2 of runs (one in a million
    at 0.001) instead of alpha, which matters where the same lesson runs many times a night; a
    wrong one still fails with the power `split_power` computes. Asserts; returns the rows of
    the sample that decided."""
    rows, bad = _judge(measured, weights, alpha)
    if bad and again is not None:
        print("first sample rejected (" + "; ".join(bad) + "): measuring a second sample")
        rows, second = _judge(again(), weights, alpha)
        bad = [f"first sample: {'; '.join(bad)}; second sample: {'; '.join(second)}"] if second else []
    assert not bad, "; ".join(bad)
    return rows


def hop_addresses(t, namespace: str, owner: str) -> dict:
    """Where to reach one pod of Deployment `owner` on the local lab: `direct` (the app's own
    port), `sidecar` (its Envoy's ingress listener) and `gateway`, as (host, port). Other
    targets: only the gateway (the pod network is not reachable from here)."""
    out = {}
    if t.name == "local":
        pod = next((p for p in t.pods(namespace) if p.get("owner") == owner and p.get("role") == "meshed"), None)
        if pod is None:
            raise NotebookError(f"no running meshed pod of {owner} in {namespace}")
        app = next(c for c in pod["containers"] if c["name"] != "envoy")
        with open(f"/proc/{app['pid']}/environ", "rb") as f:
            env = dict(x.split(b"=", 1) for x in f.read().split(b"\0") if b"=" in x)
        out["direct"] = ("127.0.0.1", int(env[b"PORT"]))
        listeners = t.admin(pod["name"], "/listeners?format=json").json()["listener_statuses"]
        ingress = next(x for x in listeners if x["name"].startswith("lds_ingress"))
        a = ingress["local_address"]["socket_address"]
        out["sidecar"] = (a.get("address", "127.0.0.1"), a["port_value"])
    out["gateway"] = gateway_address(t)
    return out


def latency_by_hop(t, addresses: dict, paths: dict, n: int = 200, rounds: int = 10,
                   concurrency: int = 1) -> dict:
    """Time `n` GETs on each hop (`paths[hop]` is what to ask there), in `rounds` turns so that
    every hop sees the same moments of a busy machine; returns {hop: [milliseconds]}."""
    from ..quiet import quiet
    samples = {hop: [] for hop in addresses}
    per_round = max(1, n // rounds)
    with quiet():   # the suite's other labs (appmesh-lab e2e -j) wait: their CPU is not in the figures
        for _ in range(rounds):
            for hop, address in addresses.items():
                hits = hit(t, paths[hop], n=per_round, address=address, concurrency=concurrency)
                bad = [h.status for h in hits if h.status != 200]
                if bad:
                    raise NotebookError(f"{hop} {address[0]}:{address[1]}{paths[hop]} answered {bad[0]}")
                samples[hop] += [h.elapsed_ms for h in hits]
    return samples


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        raise NotebookError("no values")
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


