"""Charts and the mesh's topology picture."""
from __future__ import annotations

import os
import sys

from .common import APPMESH_KINDS
from .measure import percentile
from .resources import condition


# ---- pictures ---------------------------------------------------------------------------

class Chart:
    """A finished matplotlib figure that displays as a PNG in any notebook front end
    (`.figure` is the Figure itself, for saving or tweaking)."""

    def __init__(self, figure, dpi: int = 80):
        self.figure, self.dpi = figure, dpi

    def _repr_png_(self) -> bytes:
        import io
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=self.dpi, bbox_inches="tight")
        return buf.getvalue()

    def __repr__(self) -> str:
        return f"<Chart: {self.figure.axes[0].get_title() if self.figure.axes else 'figure'}>"


def _plt():
    import matplotlib
    if "ipykernel" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def split_chart(steps: list, title: str = "Traffic split: measured vs configured"):
    """Grouped bars per step: configured share vs measured share for each version.
    steps: [(label, {version: weight}, Counter of answers by version)]. Returns a Chart."""
    plt = _plt()
    versions = sorted({v for _, w, m in steps for v in list(w) + list(m)})
    fig, axes = plt.subplots(1, len(steps), figsize=(3.2 * len(steps) + 0.8, 3.2), sharey=True, dpi=80, squeeze=False)
    for ax, (label, weights, measured) in zip(axes[0], steps):
        n = sum(measured.values()) or 1
        total = sum(weights.values()) or 1
        xs = range(len(versions))
        conf = [100 * weights.get(v, 0) / total for v in versions]
        meas = [100 * measured.get(v, 0) / n for v in versions]
        ax.bar([x - 0.2 for x in xs], conf, width=0.4, label="configured", color="#9ecae1")
        ax.bar([x + 0.2 for x in xs], meas, width=0.4, label="measured", color="#3182bd")
        for x, m in zip(xs, meas):
            ax.text(x + 0.2, m + 1, f"{m:.0f}%", ha="center", fontsize=8)
        ax.set_xticks(list(xs), versions)
        ax.set_title(f"{label} (n={n})", fontsize=10)
        ax.set_ylim(0, 110)
    axes[0][0].set_ylabel("% of requests")
    axes[0][-1].legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    plt.close(fig)
    return Chart(fig)


def latency_histogram(samples_ms: list[float], title: str = "Latency through the gateway"):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
    ax.hist(samples_ms, bins=30, color="#3182bd")
    for q, style in ((0.5, "--"), (0.9, ":"), (0.99, "-.")):
        v = percentile(samples_ms, q)
        ax.axvline(v, color="#d62728", linestyle=style, label=f"p{int(q * 100)} {v:.1f} ms")
    ax.set_xlabel("ms")
    ax.set_ylabel("requests")
    ax.set_title(f"{title} (n={len(samples_ms)})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return Chart(fig)


def _selects(selector, labels: dict) -> bool:
    """Kubernetes label selector semantics as App Mesh uses them: absent selects nothing,
    {} selects everything."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        val, op = labels.get(e["key"]), e["operator"]
        if (op == "In" and val not in e.get("values", [])) or (op == "NotIn" and val in e.get("values", [])) or \
                (op == "Exists" and e["key"] not in labels) or (op == "DoesNotExist" and e["key"] in labels):
            return False
    return True


def topology_graph(t, namespace: str) -> dict:
    """The mesh as the live resources describe it: nodes per column (gateway, routes,
    services, routers, nodes) and labelled edges. Built with target.get only."""
    get = {k: t.get(k, namespace=namespace) for k in APPMESH_KINDS if k != "Mesh"}
    ns_labels = {}
    for ns in t.get("Namespace"):
        ns_labels[ns["metadata"]["name"]] = (ns.get("metadata") or {}).get("labels") or {}
    cols = {c: [] for c in ("gateway", "route", "service", "router", "node")}
    edges, active = [], {}

    def add(col, kind, item):
        key = f"{kind}/{item['metadata']['name']}"
        cols[col].append(key)
        active[key] = condition(item).get("status") == "True"
        return key
    vgs = [(add("gateway", "VirtualGateway", vg), vg) for vg in get["VirtualGateway"]]
    vs_keys = {vs["metadata"]["name"]: add("service", "VirtualService", vs) for vs in get["VirtualService"]}
    vr_keys = {vr["metadata"]["name"]: add("router", "VirtualRouter", vr) for vr in get["VirtualRouter"]}
    vn_keys = {vn["metadata"]["name"]: add("node", "VirtualNode", vn) for vn in get["VirtualNode"]}
    for gr in get["GatewayRoute"]:
        key = add("route", "GatewayRoute", gr)
        spec = gr.get("spec") or {}
        rtype = next((k for k in ("httpRoute", "http2Route", "grpcRoute") if k in spec), None)
        body = spec.get(rtype) or {}
        for vk, vg in vgs:
            vspec = vg.get("spec") or {}
            if _selects(vspec.get("namespaceSelector"), ns_labels.get(namespace, {})) and \
                    _selects(vspec.get("gatewayRouteSelector", {}), (gr.get("metadata") or {}).get("labels") or {}):
                edges.append((vk, key, f"p{spec['priority']}" if "priority" in spec else ""))
        m = body.get("match") or {}
        label = m.get("prefix") or (m.get("path") or {}).get("exact") or (m.get("path") or {}).get("regex") or \
            m.get("serviceName") or ""
        ref = ((((body.get("action") or {}).get("target") or {}).get("virtualService") or {}).get("virtualServiceRef")
               or {})
        target = vs_keys.get(ref.get("name"))
        edges.append((key, target or f"VirtualService/{ref.get('name')} (missing)", label))
    for vs in get["VirtualService"]:
        prov = (vs.get("spec") or {}).get("provider") or {}
        src = vs_keys[vs["metadata"]["name"]]
        if "virtualNode" in prov:
            edges.append((src, vn_keys.get(prov["virtualNode"].get("virtualNodeRef", {}).get("name"), "?"), ""))
        if "virtualRouter" in prov:
            edges.append((src, vr_keys.get(prov["virtualRouter"].get("virtualRouterRef", {}).get("name"), "?"), ""))
    for vr in get["VirtualRouter"]:
        src = vr_keys[vr["metadata"]["name"]]
        weights: dict = {}
        for r in (vr.get("spec") or {}).get("routes") or []:
            body = next((v for k, v in r.items() if k.endswith("Route")), {})
            for wt in (body.get("action") or {}).get("weightedTargets") or []:
                name = (wt.get("virtualNodeRef") or {}).get("name")
                weights.setdefault(name, []).append(f"{r['name']}:{wt.get('weight')}")
        for name, ws in weights.items():
            edges.append((src, vn_keys.get(name, f"VirtualNode/{name} (missing)"), " ".join(ws)))
    for _, dst, _ in edges:
        if dst not in active:  # a reference to nothing: drawn, in red
            cols["service" if dst.startswith("VirtualService") else "node"].append(dst)
            active[dst] = False
    return {"namespace": namespace, "columns": cols, "edges": edges, "active": active}


def draw_topology(graph: dict):
    """Draw topology_graph() left to right with matplotlib. Returns a Chart."""
    plt = _plt()
    from matplotlib.patches import FancyBboxPatch
    cols = [c for c in ("gateway", "route", "service", "router", "node")]
    height = max(2, max(len(v) for v in graph["columns"].values()))
    fig, ax = plt.subplots(figsize=(15, 0.9 * height + 1.4), dpi=80)
    step = 4.0   # columns apart: room between the boxes for the edge labels
    pos = {}
    colors = {"VirtualGateway": "#fdd0a2", "GatewayRoute": "#c7e9c0", "VirtualService": "#c6dbef",
              "VirtualRouter": "#dadaeb", "VirtualNode": "#fcbba1"}
    for x, col in enumerate(cols):
        items = graph["columns"][col]
        for i, key in enumerate(items):
            y = (height - 1) / 2 - (i - (len(items) - 1) / 2)
            pos[key] = (x * step, y)
        ax.text(x * step, height - 0.2, {"gateway": "virtual gateway", "route": "gateway routes",
                                        "service": "virtual services", "router": "virtual routers",
                                        "node": "virtual nodes"}[col], ha="center", fontsize=10, weight="bold")
    for key, (x, y) in pos.items():
        kind, _, name = key.partition("/")
        ok = graph["active"].get(key, False)
        ax.add_patch(FancyBboxPatch((x - 1.1, y - 0.28), 2.2, 0.56, boxstyle="round,pad=0.04",
                                    fc=colors.get(kind, "#eeeeee"), ec="#2ca02c" if ok else "#d62728", lw=1.5))
        ax.text(x, y, name if len(name) <= 26 else name[:25] + "…", ha="center", va="center", fontsize=8,
                gid="node-label")
    ax.set_xlim(-1.4, 4 * step + 1.4)
    ax.set_ylim(-0.8, height + 0.1)
    ax.axis("off")
    ax.set_title(f"Mesh topology in namespace {graph['namespace']} (green border: active)", fontsize=11)
    fig.tight_layout()
    # edge labels go where their drawn extent clears every label already drawn (box names first)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    placed = [t.get_window_extent(renderer).expanded(1.05, 1.2) for t in ax.texts if t.get_gid() == "node-label"]
    for src, dst, label in graph["edges"]:
        if src in pos and dst in pos:
            (x1, y1), (x2, y2) = pos[src], pos[dst]
            ax.annotate("", xy=(x2 - 1.15, y2), xytext=(x1 + 1.15, y1),
                        arrowprops=dict(arrowstyle="->", color="#555555", lw=1))
            if label:
                label = label if len(label) <= 18 else label[:17] + "…"
                (sx, sy), (ex, ey) = (x1 + 1.15, y1), (x2 - 1.15, y2)
                fractions = (0.5, 0.3, 0.7, 0.4, 0.6, 0.2, 0.8, 0.1, 0.9)
                text = ax.text(0, 0, label, ha="center", va="center", fontsize=7, color="#333333", gid="edge-label",
                               bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.9))
                spots = [(f, dy) for dy in (0, 0.22, -0.22) for f in fractions] + [(0.5, 0)]
                for f, dy in spots:
                    text.set_position((sx + (ex - sx) * f, sy + (ey - sy) * f + dy))
                    box = text.get_window_extent(renderer)
                    if not any(box.overlaps(p) for p in placed):
                        break
                placed.append(box)
    plt.close(fig)
    return Chart(fig)


def topology(t, namespace: str):
    """topology_graph + draw_topology: (graph, Chart)."""
    g = topology_graph(t, namespace)
    return g, draw_topology(g)


