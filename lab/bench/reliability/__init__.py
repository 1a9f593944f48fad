"""`appmesh-lab bench reliability [--quick]`: faults, load with configuration churn, crash safety,
hostile input and exposure of the local lab.

Every scenario runs on a lab home of its own (a fresh temporary directory, always torn down, and
checked for processes left behind), prints what it did and what it measured, and returns a dict;
`run()` ends with ONE JSON line holding every figure, and `write_results_page()` turns that record
into docs/reliability.md.

  faults    steady keep-alive load through the gateway on the stable routes (/products, /reviews)
            while, one at a time: the gateway Envoy, a sidecar Envoy and an app are SIGKILLed; the
            daemon is SIGKILLed and restarted at once; paused (SIGSTOP) for a while; SIGKILLed and
            left down for a while, then started. Then the gateway Deployment is scaled to 2 replicas
            (the kernel's SO_REUSEPORT spreads connections over both Envoys) and one is killed again.
            Figures: failed requests per fault (and how many would still fail after one retry on a
            new connection), outage and time until the killed process serves again, resources kept.
  churn     N apply/delete operations of unrelated gateway routes and VirtualRouter weight changes
            while the load runs; then every proxy must serve the last applied state (requests and
            the gateway's config dump), and the daemon's RSS is sampled throughout.
  crash     SIGKILL of the daemon at a random point during an apply of 200 documents, many times;
            after each, the store holds the whole apply or none of it and PRAGMA integrity_check is ok.
  hostile   the corpus tests/reliability/corpus/ (malformed and malicious manifests and API
            requests), conflicting concurrent applies of one resource, and seeded random mutations of
            valid manifests, each through the validator and the daemon's API: every one rejected with
            a finding or error, nothing crashes, nothing is half-applied, and the lab keeps serving.
  exposure  everything listens on loopback only, and on TCP only the App Mesh API and the data
            plane: the daemon's control API, xDS and every Envoy admin are Unix sockets (0600, in a
            0700 folder); the API refuses browser-shaped requests; Envoy admin is unreachable through
            the gateway; TLS and mTLS refuse wrong certificates; keys stay in <home>/certs (0600);
            state files are the owner's only; another local user (nobody, through runuser) tries
            every way in and gets nothing, and nothing of the owner's changes (local_user.py).

A check has a target and `met` True/False; `met` None means the figure is reported, not judged
(the reason is in `note`). The targets (DESIGN.md "What users expect"): no failed request on stable
routes while the daemon is down or restarting, recovery from an Envoy kill < 2 s, no non-2xx on
stable routes during churn, daemon RSS end <= start + 50 MB (judged in the full run only), 0 partial
applies, 0 crashes.

The package, one file per scenario:

  common.py    sizes, checks, a lab of its own per scenario (Lab), the load generator (Load), plain HTTP
               to a port or a Unix socket
  faults.py, churn.py, crash.py, hostile.py, exposure.py   the scenarios
  local_user.py  every way in, tried as another local user, and what the owner still has
  report.py    run() over the scenarios, the JSON line, docs/reliability.md, and `python -m lab.bench.reliability`
"""
from __future__ import annotations

from .common import CORPUS, QUICK, ROOT, SCENARIOS, Lab, Load, Sizes, check, sizes
from .exposure import _wrong_ca_pem, listening_sockets, scenario_exposure
from .hostile import (
    Case, Hostile, _case_request, _clear, _hyp_strategies, hypothesis_available, load_corpus, mutate, validator_case,
    walkthrough_resources)
from .report import BEGIN, END, RUNNERS, main, run, write_results_page

__all__ = ["BEGIN", "CORPUS", "Case", "END", "Hostile", "Lab", "Load", "QUICK", "ROOT", "RUNNERS", "SCENARIOS", "Sizes",
           "_case_request", "_clear", "_hyp_strategies", "_wrong_ca_pem", "check", "hypothesis_available",
           "listening_sockets", "load_corpus", "main", "mutate", "run", "scenario_exposure", "sizes",
           "validator_case", "walkthrough_resources", "write_results_page"]
