"""Route precedence: the order in which gateway routes (and router routes) are tried.

App Mesh's documented rules (APPMESH-FACTS §1.4, §6.1):
  1. Lower `priority` first; 0 is the highest. The first matching route wins.
  2. Among routes without priority, the longest prefix wins (/chapter before /).
Where the documentation is silent, the lab decides (and this is the only place it does):
  * A route without `priority` is ordered as priority 1000, the lowest, as the controller's
    CRD comment says ("Default Priority is 1000 which is lowest priority").
  * Ties (equal or absent priority) are broken by specificity of the path match:
      exact path  >  prefix (longer first)  >  regex path  >  no path condition
    then by the number of further conditions (headers, query parameters, method,
    hostname, port; more first), then by hostname exact before suffix, then by name,
    so the order is total and never depends on the order of the input.
"""
from __future__ import annotations

DEFAULT_PRIORITY = 1000


def _path_rank(match: dict) -> tuple:
    path = match.get("path") or {}
    if path.get("exact") is not None:
        return (0, -len(path["exact"]))
    if match.get("prefix") is not None:
        return (1, -len(match["prefix"]))
    if path.get("regex") is not None:
        return (2, 0)
    if match.get("serviceName") is not None:  # gRPC: the service is a path prefix /<service>/
        return (1, -(len(match["serviceName"]) + 2))
    return (3, 0)


def _conditions(match: dict) -> int:
    n = len(match.get("headers") or []) + len(match.get("queryParameters") or []) + len(match.get("metadata") or [])
    n += sum(1 for k in ("method", "hostname", "port") if match.get(k) is not None)
    return n


def sort_key(name: str, priority, match: dict) -> tuple:
    hostname = match.get("hostname") or {}
    host_rank = 0 if hostname.get("exact") else (1 if hostname.get("suffix") else 2)
    p = DEFAULT_PRIORITY if priority is None else priority
    return (p, _path_rank(match), -_conditions(match), host_rank, name)
