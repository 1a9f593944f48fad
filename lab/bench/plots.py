"""PNG plots of benchmark records (matplotlib, Agg backend: no display needed).

`plot(kind, record, directory)` writes the kind's figures into `directory` and returns their
paths; a kind without plots (or a record without the numbers a plot needs) writes nothing.
"""
from __future__ import annotations

from pathlib import Path

DPI = 80
SIZE = (6.4, 3.6)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _plt().close(fig)
    return path


def _cdf(ax, values, label, **style):
    xs = sorted(values)
    if not xs:
        return
    ys = [(i + 1) / len(xs) for i in range(len(xs))]
    ax.step(xs, ys, where="post", label=label, **style)


def translate(rec: dict, d: Path) -> list:
    plt = _plt()
    res = list(rec["results"].values())
    ns = [r["routes"] for r in res]
    fig, ax = plt.subplots(figsize=SIZE)
    for step, label in (("translate", "translate (ir + envoy)"), ("snapshot", "snapshots (protobuf)"),
                        ("total", "total")):
        ax.plot(ns, [r[f"{step}_ms"]["median"] for r in res], marker="o", label=label)
    if len(ns) > 1:
        per = res[0]["translate_ms"]["median"] / ns[0]
        ax.plot(ns, [per * n for n in ns], linestyle=":", color="grey", label="linear from the smallest")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gateway routes (= virtual services = virtual nodes)")
    ax.set_ylabel("median ms")
    ax.set_title("translation time")
    ax.legend(fontsize=8)
    return [_save(fig, d / "translate.png")]


def converge(rec: dict, d: Path) -> list:
    plt = _plt()
    out = []
    for kind, title, fname in (("route", "new gateway route: apply -> routed", "converge-route.png"),
                               ("weights", "VirtualRouter weights flipped: apply -> traffic follows",
                                "converge-weights.png")):
        fig, ax = plt.subplots(figsize=SIZE)
        drawn = False
        for i, (n, r) in enumerate(rec["results"].items()):
            samples = (r.get("samples_ms") or {})
            prefix = "" if kind == "route" else "weights_"
            color = f"C{i}"
            if samples.get(prefix + "routed"):
                _cdf(ax, samples[prefix + "routed"], f"{n} routes: apply -> routed", color=color)
                drawn = True
            if samples.get(prefix + "push_ack"):
                _cdf(ax, samples[prefix + "push_ack"], f"{n} routes: push -> Envoy ACK (floor)", color=color,
                     linestyle="--")
        if not drawn:
            plt.close(fig)
            continue
        ax.set_xscale("log")
        ax.set_xlabel("ms (log)")
        ax.set_ylabel("fraction of changes")
        ax.set_title(title)
        ax.axvline(rec.get("target", {}).get("routed_p99_ms", 200), color="grey", linestyle=":", linewidth=1)
        ax.legend(fontsize=7)
        out.append(_save(fig, d / fname))
    return out


def scale(rec: dict, d: Path) -> list:
    plt = _plt()
    res = list(rec["results"].values())
    ns = [r["routes"] for r in res]
    fig, axes = plt.subplots(2, 2, figsize=(8, 5.6))
    panels = (("translate_ms", "translation (ms)"), ("all_acked_ms", "apply -> every proxy ACKed (ms)"),
              ("daemon_rss_mb", "daemon RSS (MB)"), ("gateway_envoy_rss_mb", "gateway Envoy RSS (MB)"))
    for ax, (key, label) in zip(axes.flat, panels):
        ys = [r.get(key) for r in res]
        pts = [(n, y) for n, y in zip(ns, ys) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o")
        ax.set_xscale("log")
        if key.endswith("_ms"):
            ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("gateway routes", fontsize=8)
    fig.suptitle("scale: N gateway routes, N virtual services, N virtual nodes", fontsize=10)
    return [_save(fig, d / "scale.png")]


def dataplane(rec: dict, d: Path) -> list:
    plt = _plt()
    paths = [p for p in rec["paths"] if p.get("rps")]
    if not paths:
        return []
    names = [p["name"] for p in paths]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.4))
    a1.bar(names, [p["rps"] for p in paths], color="tab:blue")
    a1.set_title("requests/s", fontsize=9)
    x = range(len(names))
    a2.bar([i - 0.2 for i in x], [p["p50_ms"] for p in paths], width=0.4, label="p50")
    a2.bar([i + 0.2 for i in x], [p["p99_ms"] for p in paths], width=0.4, label="p99")
    a2.set_xticks(list(x))
    a2.set_xticklabels(names)
    a2.set_title("latency (ms)", fontsize=9)
    a2.legend(fontsize=8)
    for ax in (a1, a2):
        ax.tick_params(axis="x", labelsize=7, rotation=20)
    fig.suptitle(f"data plane: {rec['load']['tool']}, {rec['load']['connections']} connections, "
                 f"{rec['load']['duration_s']} s per path", fontsize=10)
    return [_save(fig, d / "dataplane.png")]


def lab(rec: dict, d: Path) -> list:
    plt = _plt()
    m = rec["median"]
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    labels = ["daemon", "Envoys", "apps"]
    vals = [m["daemon_mb"], m["envoys_mb"], m["apps_mb"]]
    left = 0.0
    for lbl, v in zip(labels, vals):
        ax.barh(["RSS"], [v], left=left, label=f"{lbl} {v:.0f} MB")
        left += v
    ax.set_xlabel("MB")
    ax.set_title(f"lab memory (walkthrough running): {m['total_mb']:.0f} MB", fontsize=9)
    ax.legend(fontsize=8)
    return [_save(fig, d / "lab.png")]


PLOTS = {"translate": translate, "converge": converge, "scale": scale, "dataplane": dataplane, "lab": lab}


def plot(kind: str, record: dict, directory) -> list:
    fn = PLOTS.get(kind)
    if fn is None:
        return []
    return fn(record, Path(directory))
