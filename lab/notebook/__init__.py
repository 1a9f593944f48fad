"""Helpers the lesson notebooks import (`from lab import notebook as nb`).

    t = nb.setup("local", stage="05")   # the state notebook 05 leaves, idempotently
    nb.show("manifests/walkthrough/10-product-gateway-route.yaml")
    nb.apply(t, "manifests/walkthrough/10-product-gateway-route.yaml")
    hits = nb.hit(t, "/", n=200, gateway="gateway_ex-canary")
    nb.split_chart([("90/10", {"v1": 90, "v2": 10}, nb.count(hits, "version"))])

Stages are the state each notebook leaves behind, so any notebook can start from where the
one before it ends:

    stage  what is in place                                         walkthrough files
    00     nothing (the target object only)                         -
    01     the lab is up (local) / the cluster exists (kind, eks)   -
    02     the control plane is installed (clusters: Helm chart)    -
    03     namespace, mesh, virtual nodes and services              00-05
    04     the applications                                         06-07
    05     the virtual gateway and its Envoy                        08-09
    06     the gateway routes (notebooks 07-11 start from here)      10-11

Everything that talks to the mesh goes through the target interface (lab/targets), so the
same notebook code runs on `local`, `kind` and `eks`. Each helper raises `NotebookError`
with a sentence that says what to do when it cannot do its job.
"""
from __future__ import annotations

from .common import (  # noqa: F401
    APPMESH_KINDS, CONTROLLER_HELM, EXAMPLES, GATEWAY, MANIFESTS, MESH, NotebookError, ROOT,
    STAGE_FILES, WALKTHROUGH, lab_home, tidy,
)
from .staging import (  # noqa: F401
    CHART, _stage, _takes, cluster_step, command, helm, install_controller, make_target,
    setup, wait_pods, walkthrough_files,
)
from .display import (  # noqa: F401
    _display, _rel, show, show_parameters, show_text, table,
)
from .resources import (  # noqa: F401
    Results, _print_results, _route, apply, apply_text, condition, delete, delete_text, describe, forget,
    manifest_doc, quiet, remove, resource_rows, resources, route_snippet, router_with_weights,
    router_without, show_routes, to_yaml,
)
from .traffic import (  # noqa: F401
    Hit, curl_line, expect, gateway_address, hit, load_during,
)
from .accesslog import (  # noqa: F401
    ENVOY_HEADERS, RESPONSE_FLAGS, _ACCESS_LOG, _MARKS, access_log, access_log_entry, explain_flag,
    flags, response_flag, show_request, status_line,
)
from .measure import (  # noqa: F401
    SPLIT_ALPHA, SPLIT_OFF_BY, SPLIT_POWER, SPLIT_SAMPLES, _binom_pmf, binomial_p_value, check_split, count,
    hop_addresses, latency_by_hop, percentile, split_power, split_sample_size,
)
from .tls import (  # noqa: F401
    _SNIConnection, https_attempt, https_get, lab_ca, tls_ca,
)
from .envoyconfig import (  # noqa: F401
    _hcm, cli, config_summary, find_all, host_health, listening, proxy_rows, stat, tls_contexts,
)
from .tools import (  # noqa: F401
    NEEDS, TOOLS, check_tools,
)
from .appmeshapi import (  # noqa: F401
    AppMeshAPI, appmesh_api,
)
from .exercises import (  # noqa: F401
    active, exercise, findings, settled, try_manifest, verdict,
)
from .pictures import (  # noqa: F401
    Chart, _plt, _selects, draw_topology, latency_histogram, split_chart, topology, topology_graph,
)
