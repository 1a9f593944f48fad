"""Write the hostile-input corpus: tests/reliability/corpus/ (run: python tests/reliability/make_corpus.py).

Every file is one hostile input for the lab, aimed at a lab that runs manifests/walkthrough/:

  NNN-<slug>.yaml  a manifest, sent as one file to the validator and to POST /v1/apply. It starts
                   with `# hostile: <what it tries>` and `# expect: rejected|unchanged|any`
                   (unchanged: passed over, nothing may change; any: a valid but nasty input, e.g. a
                   regex that backtracks in other engines, which may be accepted as long as it is
                   accepted whole, quickly and without a crash).
  NNN-<slug>.json  an API request: {"description", "target": "v1"|"appmesh", "method", "path",
                   "headers", one of "body" (JSON) / "body_text" / "raw" (bytes on the socket, no
                   HTTP client in between), "expect": "rejected"|"unchanged"}; App Mesh requests are
                   signed with the lab's credentials unless "unsigned": true. {"$repeat": s,
                   "times": n} anywhere stands for s repeated n times (big inputs, small files).
                   With "versions" instead it is a set of conflicting versions of one resource,
                   applied by several threads at once (lab/bench/reliability/hostile.py _conflicts).

The documents around the hostile part are valid and name the walkthrough's objects, so the
hostile part is the only reason for a rejection. The files are generated: do not edit them,
edit this script and run it again (tests/reliability/test_hostile_input.py checks they agree).
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
NS = "appmesh-demo"
APPMESH = "appmesh.k8s.aws/v1beta2"

ROUTE = {"apiVersion": APPMESH, "kind": "GatewayRoute", "metadata": {"name": "hostile-route", "namespace": NS},
         "spec": {"httpRoute": {"match": {"prefix": "/hostile"},
                                "action": {"target": {"virtualService": {"virtualServiceRef": {"name": "product-service"}}}}}}}
SERVICE = {"apiVersion": APPMESH, "kind": "VirtualService", "metadata": {"name": "hostile-service", "namespace": NS},
           "spec": {"awsName": f"hostile-service.{NS}.svc.cluster.local",
                    "provider": {"virtualNode": {"virtualNodeRef": {"name": "product-service-vn"}}}}}
NODE = {"apiVersion": APPMESH, "kind": "VirtualNode", "metadata": {"name": "hostile-node", "namespace": NS},
        "spec": {"podSelector": {"matchLabels": {"app": "hostile-node"}},
                 "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
                 "serviceDiscovery": {"dns": {"hostname": f"hostile-node.{NS}.svc.cluster.local"}}}}
ROUTER = {"apiVersion": APPMESH, "kind": "VirtualRouter", "metadata": {"name": "hostile-router", "namespace": NS},
          "spec": {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
                   "routes": [{"name": "r", "httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": [
                       {"virtualNodeRef": {"name": "product-service-vn"}, "weight": 1}]}}}]}}
GATEWAY = {"apiVersion": APPMESH, "kind": "VirtualGateway", "metadata": {"name": "hostile-gateway", "namespace": NS},
           "spec": {"namespaceSelector": {"matchLabels": {"gateway": "nobody"}},
                    "podSelector": {"matchLabels": {"app": "hostile-gateway"}},
                    "listeners": [{"portMapping": {"port": 8088, "protocol": "http"}}]}}
MESH = {"apiVersion": APPMESH, "kind": "Mesh", "metadata": {"name": "hostile-mesh"},
        "spec": {"namespaceSelector": {"matchLabels": {"mesh": "hostile-mesh"}}}}
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hostile-app", "namespace": NS},
          "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "hostile-app"}},
                   "template": {"metadata": {"labels": {"app": "hostile-app"},
                                             "annotations": {"appmesh.k8s.aws/sidecarInjectorWebhook": "disabled"}},
                                "spec": {"containers": [{"name": "app", "image": "appmesh-lab/sample-app:0.1.0",
                                                         "ports": [{"containerPort": 8080}]}]}}}}


def dump(*docs) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False, allow_unicode=True, width=1 << 20) for d in docs)


def with_value(doc: dict, path: str, value) -> dict:
    d = copy.deepcopy(doc)
    cur = d
    parts = path.split(".")
    for p in parts[:-1]:
        cur = cur[int(p)] if p.isdigit() else cur[p]
    last = parts[-1]
    if last.isdigit():
        cur[int(last)] = value
    else:
        cur[last] = value
    return d


def without(doc: dict, path: str) -> dict:
    d = copy.deepcopy(doc)
    cur = d
    parts = path.split(".")
    for p in parts[:-1]:
        cur = cur[int(p)] if p.isdigit() else cur[p]
    del cur[parts[-1]]
    return d


def cases():
    """(slug, hostile description, expect, text) for manifests; (slug, dict) for JSON requests."""
    m = []  # manifests

    def add(slug, what, text, expect="rejected"):
        m.append((slug, what, expect, text))

    # -- wrong types, field by field ------------------------------------------------------------
    wrong = {"list": [1, 2], "map": {"a": "b"}, "int": 42, "bool": True, "null": None, "float": 1.5,
             "huge-int": 10 ** 30, "string": "not-this"}
    fields = [
        (ROUTE, "spec.httpRoute.match.prefix", ["list", "map", "int", "bool", "float", "huge-int"]),
        (ROUTE, "spec.httpRoute", ["list", "string", "int", "bool"]),
        (ROUTE, "spec.httpRoute.action.target.virtualService.virtualServiceRef.name", ["list", "map", "int"]),
        (ROUTE, "spec", ["list", "string", "int"]),
        (ROUTE, "metadata", ["list", "string"]),
        (ROUTE, "metadata.name", ["list", "map", "int", "bool"]),
        (ROUTE, "metadata.namespace", ["list", "map", "int"]),
        (ROUTE, "kind", ["list", "map", "int", "null"]),
        (ROUTE, "apiVersion", ["list", "int", "null"]),
        (SERVICE, "spec.provider", ["list", "string", "int"]),
        (SERVICE, "spec.awsName", ["list", "map", "int"]),
        (NODE, "spec.listeners", ["map", "string", "int"]),
        (NODE, "spec.listeners.0.portMapping.port", ["list", "map", "string", "float", "huge-int", "bool"]),
        (NODE, "spec.listeners.0.portMapping.protocol", ["list", "int", "string"]),
        (NODE, "spec.podSelector", ["list", "string"]),
        (NODE, "spec.serviceDiscovery.dns.hostname", ["list", "int"]),
        (ROUTER, "spec.routes.0.httpRoute.action.weightedTargets.0.weight", ["string", "list", "float", "huge-int"]),
        (ROUTER, "spec.routes", ["map", "string"]),
        (GATEWAY, "spec.listeners.0.portMapping.port", ["string", "list", "huge-int"]),
        (DEPLOY, "spec.replicas", ["string", "list", "float", "huge-int"]),
        (DEPLOY, "spec.template.spec.containers", ["map", "string", "int"]),
        (DEPLOY, "spec.template.spec.containers.0.image", ["list", "int"]),
    ]
    for base, path, kinds in fields:
        for k in kinds:
            slug = f"type-{base['kind'].lower()}-{path.replace('.', '-')}-{k}"
            add(slug, f"{base['kind']} {path} as a {k} ({wrong[k]!r:.40})", dump(with_value(base, path, wrong[k])))
    # numbers out of range
    for v in (-1, 0, 65536, 2 ** 31, -(2 ** 63)):
        add(f"range-port-{v}", f"listener port {v}", dump(with_value(NODE, "spec.listeners.0.portMapping.port", v)))
    for v in (-1, 101, 10 ** 9):
        add(f"range-weight-{v}", f"weight {v}",
            dump(with_value(ROUTER, "spec.routes.0.httpRoute.action.weightedTargets.0.weight", v)))
    for v in (-1, 1001, 10 ** 12):
        add(f"range-priority-{v}", f"gateway route priority {v}", dump(with_value(ROUTE, "spec.priority", v)))
    add("range-replicas-negative", "replicas -1", dump(with_value(DEPLOY, "spec.replicas", -1)))
    add("range-replicas-huge", "replicas 100000 (would start 200,000 processes)",
        dump(with_value(DEPLOY, "spec.replicas", 100000)))
    add("missing-required-match", "a route without match", dump(without(ROUTE, "spec.httpRoute.match")))
    add("missing-required-action", "a route without action", dump(without(ROUTE, "spec.httpRoute.action")))
    add("missing-metadata-name", "no metadata.name", dump(without(ROUTE, "metadata.name")))

    # -- names: path separators, control characters, length -------------------------------------
    names = {"dotdot-slash": "../../etc/passwd", "slash": "a/b", "backslash": "a\\b", "dotdot": "..", "dot": ".",
             "nul": "a\x00b", "newline": "a\nb", "tab": "a\tb", "escape": "a\x1b[31mred", "del": "a\x7fb",
             "rtl-override": "abc\u202ecba", "zero-width": "a\u200bb", "fullwidth": "ａｂｃ", "emoji": "app-🙂",
             "empty": "", "space": " ", "leading-dash": "-a", "trailing-dash": "a-", "upper": "Hostile",
             "percent": "%2e%2e%2f", "shell": "$(touch /tmp/pwned)", "backtick": "`id`", "semicolon": "a;rm -rf",
             "pipe": "a|b", "glob": "*", "long-254": "a" * 254, "long-10000": "a" * 10000, "unicode-dots": "a\u2024b",
             "absolute": "/etc/passwd", "tilde": "~root", "crlf": "a\r\nb", "question": "a?b", "hash": "a#b",
             "at": "a@b", "colon": "a:b"}
    for slug, name in names.items():
        for base in (ROUTE, DEPLOY):
            add(f"name-{slug}-{base['kind'].lower()}", f"{base['kind']} named {name!r:.60}",
                dump(with_value(base, "metadata.name", name)))
    for slug in ("dotdot-slash", "slash", "nul", "newline", "long-10000", "upper", "absolute"):
        add(f"namespace-{slug}", f"namespace {names[slug]!r:.60}", dump(with_value(DEPLOY, "metadata.namespace", names[slug])))
    add("label-value-bad", "a label value with a slash and 100 characters (Kubernetes refuses it; the lab only "
        "matches labels, so it may accept it)",
        dump(with_value(DEPLOY, "spec.template.metadata.labels", {"app": "hostile-app", "x": "a/" + "b" * 100})),
        expect="any")
    add("container-name-path", "container name ../x",
        dump(with_value(DEPLOY, "spec.template.spec.containers.0.name", "../x")))
    add("local-command-injection", "a local-command annotation with a shell injection on an unknown image",
        dump(with_value(with_value(DEPLOY, "spec.template.metadata.annotations",
                                   {"lab.appmesh.dev/local-command": "sh -c 'touch /tmp/pwned'; x"}),
                        "spec.template.spec.containers.0.image", 12)))

    # -- YAML bombs, anchors, aliases -----------------------------------------------------------
    lol = ["a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]"]
    for i in range(1, 10):
        lol.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    add("yaml-billion-laughs", "billion laughs: 9 levels of 9 aliases (387 million nodes)",
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: lol, namespace: {NS}}}\ndata:\n  " + "\n  ".join(lol) + "\n")
    add("yaml-billion-laughs-in-route", "billion laughs inside a gateway route's spec",
        dump(ROUTE).replace("spec:\n", "spec:\n  " + "\n  ".join(lol) + "\n", 1))
    big = "x" * 30000
    add("yaml-quadratic-alias", "a 30 kB string aliased 2,000 times (60 MB expanded)",
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: hostile-app, namespace: {NS}}}\nspec:\n"
        f"  selector: {{matchLabels: {{app: hostile-app}}}}\n  template:\n    metadata: {{labels: {{app: hostile-app}}}}\n"
        f"    spec:\n      containers:\n      - name: app\n        image: appmesh-lab/sample-app:0.1.0\n"
        f"        env: [{{name: X, value: &big \"{big}\"}}]\n        args: [" + ", ".join(["*big"] * 2000) + "]\n")
    add("yaml-undefined-alias", "an alias to no anchor", dump(ROUTE).replace("prefix: /hostile", "prefix: *nothing"))
    add("yaml-recursive-anchor", "an anchor that contains its own alias", "a: &a [*a]\n")
    add("yaml-merge-key", "a merge key (<<) pulling a spec in",
        "base: &b {prefix: /hostile}\n" + dump(ROUTE).replace("match:\n      prefix: /hostile", "match:\n      <<: *b"))
    add("yaml-alias-as-key", "an alias used as a mapping key", "k: &k name\nmetadata: {*k : x}\n")
    add("yaml-complex-key", "a mapping as a mapping key", "? {a: b}\n: c\nkind: GatewayRoute\n")
    add("yaml-tags-python", "a python/object tag (code execution in unsafe loaders)",
        "!!python/object/apply:os.system ['touch /tmp/pwned']\n")
    add("yaml-tags-python-in-field", "a python/name tag inside a field",
        dump(ROUTE).replace("prefix: /hostile", "prefix: !!python/name:os.system"))
    add("yaml-custom-tag", "a custom tag", dump(ROUTE).replace("prefix: /hostile", "prefix: !Ref /hostile"))
    add("yaml-binary-tag", "a !!binary value as the prefix", dump(ROUTE).replace("prefix: /hostile", "prefix: !!binary aGVsbG8="))
    add("yaml-timestamp", "a timestamp as the prefix", dump(ROUTE).replace("prefix: /hostile", "prefix: 2001-12-14t21:59:43.10-05:00"))
    add("yaml-set", "a !!set as the hostname", dump(NODE).replace(f"hostname: hostile-node.{NS}.svc.cluster.local",
                                                                  "hostname: !!set {a, b}"))
    add("yaml-many-anchors", "1,000 anchors and 1,000 aliases",
        "x:\n" + "".join(f"  - &a{i} v{i}\n" for i in range(1000)) + "".join(f"  - *a{i}\n" for i in range(1000)))

    # -- deep nesting -----------------------------------------------------------------------------
    for depth in (65, 200, 300):
        add(f"deep-block-{depth}", f"{depth} levels of block mappings under spec",
            f"apiVersion: {APPMESH}\nkind: GatewayRoute\nmetadata: {{name: hostile-route, namespace: {NS}}}\nspec:\n"
            + "".join(f"{' ' * (i + 1)}n:\n" for i in range(depth - 1)) + f"{' ' * depth}n: x\n")
    add("deep-block-under-spec", "a 100-level mapping in spec.httpRoute.match",
        dump(with_value(ROUTE, "spec.httpRoute.match.extra", _nest(100))))
    for depth in (1000, 20000):
        add(f"deep-flow-list-{depth}", f"{depth} nested flow lists", "[" * depth + "]" * depth + "\n")
    add("deep-flow-map-5000", "5,000 nested flow mappings", "{a: " * 5000 + "1" + "}" * 5000 + "\n")

    # -- huge strings and counts ------------------------------------------------------------------
    # App Mesh documents no limit for these; the lab may accept them, whole and without harm
    add("huge-prefix-20k", "a 20 kB prefix", dump(with_value(ROUTE, "spec.httpRoute.match.prefix", "/" + "a" * 20000)),
        expect="any")
    add("huge-hostname-10k", "a 10 kB DNS name",
        dump(with_value(NODE, "spec.serviceDiscovery.dns.hostname", "a" * 10000 + ".svc.cluster.local")), expect="any")
    add("huge-label-value", "a 20 kB label value on a route",
        dump(with_value(ROUTE, "metadata.labels", {"x": "a" * 20000})), expect="any")
    add("huge-key", "a 20 kB field name", dump(with_value(ROUTE, "spec." + "k" * 20000, 1)))
    add("many-listeners", "1,000 listeners on a virtual node",
        dump(with_value(NODE, "spec.listeners", [{"portMapping": {"port": 1000 + i, "protocol": "http"}} for i in range(1000)])),
        expect="any")
    add("many-targets", "2,000 weighted targets",
        dump(with_value(ROUTER, "spec.routes.0.httpRoute.action.weightedTargets",
                        [{"virtualNodeRef": {"name": "product-service-vn"}, "weight": 1}] * 2000)))
    add("many-headers", "1,000 header matches",
        dump(with_value(ROUTE, "spec.httpRoute.match.headers", [{"name": f"h{i}", "match": {"exact": "x"}} for i in range(1000)])))
    add("long-line-no-newline", "one 30 kB line without a newline", "a" * 30000)

    # -- regular expressions ----------------------------------------------------------------------
    regexes = {"nested-plus": "(a+)+$", "alternation-star": "(a|aa)*b", "nested-star": "((((a*)*)*)*)*",
               "exp-branches": "(a|a?)+$", "many-optionals": "a?" * 100 + "a" * 100,
               "huge-class": "[" + "a-z" * 80 + "]"}
    for slug, rx in regexes.items():
        add(f"regex-pathological-{slug}", f"a backtracking-prone regex {rx!r:.40} (RE2 has no backtracking)",
            dump(with_value(without(ROUTE, "spec.httpRoute.match.prefix"), "spec.httpRoute.match.path",
                            {"regex": "/" + rx})), expect="any")
    bad_rx = {"repeat-1001": "/a{1001}", "nested-repeat": "/((a{10}){10}){11}", "atomic": "/(?>a+)b",
              "possessive": "/a++b", "lookahead": "/(?=a)a", "lookbehind": "/(?<=a)b", "backref": "/(a)\\1",
              "named-backref": "/(?P<x>a)(?P=x)", "backslash-Z": "/a\\Z", "verbose-flag": "(?x)/a b",
              "conditional": "/(a)?(?(1)b|c)", "unbalanced": "/(a", "bad-range": "/[z-a]", "bad-escape": "/\\",
              "comment": "/(?#comment)a", "nothing-to-repeat": "/a**", "too-long": "/" + "a" * 300}
    for slug, rx in bad_rx.items():
        add(f"regex-invalid-{slug}", f"a regex Envoy's RE2 refuses: {rx[:40]!r}",
            dump(with_value(without(ROUTE, "spec.httpRoute.match.prefix"), "spec.httpRoute.match.path", {"regex": rx})))
    add("regex-header-invalid", "an invalid regex in a header match",
        dump(with_value(ROUTE, "spec.httpRoute.match.headers", [{"name": "x", "match": {"regex": "(?<=a)b"}}])))

    # -- kinds and versions -----------------------------------------------------------------------
    for slug, (api, kind) in {"unknown": ("foo.example/v1", "Frobnicator"), "typo": (APPMESH, "GatewayRout"),
                              "lowercase": (APPMESH, "gatewayroute"), "v1beta1": ("appmesh.k8s.aws/v1beta1", "GatewayRoute"),
                              "v1alpha9": ("appmesh.k8s.aws/v1alpha9", "GatewayRoute"), "no-group": ("v1beta2", "GatewayRoute"),
                              "empty-kind": (APPMESH, ""),
                              "secret-type": (APPMESH, "Secret"), "spaces": (APPMESH, " GatewayRoute ")}.items():
        d = copy.deepcopy(ROUTE)
        d["apiVersion"], d["kind"] = api, kind
        add(f"kind-{slug}", f"apiVersion {api!r}, kind {kind!r}", dump(d))
    crd = copy.deepcopy(ROUTE)
    crd["apiVersion"], crd["kind"] = "apiextensions.k8s.io/v1", "CustomResourceDefinition"
    add("kind-crd", "a CustomResourceDefinition (the lab passes over it: nothing may change)", dump(crd),
        expect="unchanged")
    add("kind-missing", "no kind", dump(without(ROUTE, "kind")))
    add("apiversion-missing", "no apiVersion", dump(without(ROUTE, "apiVersion")))

    # -- structure and encoding -------------------------------------------------------------------
    add("doc-scalar", "a document that is a string", "just a string\n")
    add("doc-list", "a document that is a list", "- apiVersion: v1\n- kind: Namespace\n")
    add("doc-number", "a document that is a number", "42\n")
    add("doc-null-and-route", "an explicit null document next to a broken route", "null\n---\n" + dump(without(ROUTE, "spec")))
    add("duplicate-key-top", "kind given twice", dump(ROUTE).replace("kind: GatewayRoute", "kind: GatewayRoute\nkind: Mesh"))
    add("duplicate-key-nested", "prefix given twice",
        dump(ROUTE).replace("prefix: /hostile", "prefix: /hostile\n      prefix: /products"))
    add("duplicate-object", "the same route twice with different targets in one file",
        dump(ROUTE, with_value(ROUTE, "spec.httpRoute.action.target.virtualService.virtualServiceRef.name", "review-service")))
    add("batch-one-broken-last", "ten new valid routes and one broken one: nothing may be applied",
        dump(*[with_value(with_value(ROUTE, "metadata.name", f"batch-{i}"), "spec.httpRoute.match.prefix", f"/batch-{i}")
               for i in range(10)], without(ROUTE, "spec.httpRoute.action")))
    add("batch-one-broken-first", "a broken route before ten valid ones",
        dump(with_value(ROUTE, "spec.httpRoute.match.prefix", "no-slash"),
             *[with_value(with_value(ROUTE, "metadata.name", f"batch-{i}"), "spec.httpRoute.match.prefix", f"/batch-{i}")
               for i in range(10)]))
    add("batch-change-walkthrough-and-broken", "a change to the walkthrough's product route next to a broken document",
        dump(with_value(with_value(ROUTE, "metadata.name", "product-gateway-route"), "spec.httpRoute.match.prefix", "/hijacked"),
             with_value(NODE, "spec.listeners.0.portMapping.port", "eighty")))
    add("batch-deployment-and-broken", "a new Deployment (processes) next to a broken document",
        dump(DEPLOY, with_value(ROUTE, "spec.httpRoute", "broken")))
    add("control-char-in-value", "a bell character in a value", dump(ROUTE).replace("/hostile", "/host\x07ile"))
    add("nul-in-text", "a NUL byte in the text", dump(ROUTE).replace("prefix: /hostile", "prefix: /hostile\x00"))
    add("tab-indent", "tabs for indentation", dump(ROUTE).replace("  ", "\t"))
    add("bad-indent", "a field indented wrong", dump(ROUTE).replace("    match:", "   match:"))
    add("unterminated-quote", "an unterminated quote", dump(ROUTE).replace("prefix: /hostile", "prefix: \"/hostile"))
    add("bom-twice", "two byte-order marks", "\ufeff\ufeff" + dump(with_value(ROUTE, "spec", None)))
    add("reserved-prefix", "a route stealing an Envoy-reserved prefix", dump(with_value(ROUTE, "spec.httpRoute.match.prefix", "/appmesh-lab-admin")),
        expect="any")
    add("prefix-no-slash", "a prefix without a leading slash", dump(with_value(ROUTE, "spec.httpRoute.match.prefix", "hostile")))
    add("status-and-meshref", "read-only fields set by hand (meshRef, virtualGatewayRef)",
        dump(with_value(with_value(ROUTE, "spec.meshRef", {"name": "x", "uid": "y"}), "spec.virtualGatewayRef",
                        {"name": "x", "namespace": NS, "uid": "z"})))
    add("unknown-fields", "fields the schema does not have", dump(with_value(ROUTE, "spec.httpRoute.match.prefixx", "/a")))
    add("pod-hostile-env", "a bare Pod whose env name has control characters",
        dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hostile-pod", "namespace": NS},
              "spec": {"containers": [{"name": "app", "image": "appmesh-lab/sample-app:0.1.0",
                                       "env": [{"name": "A\x00B", "value": 1}]}]}}))
    add("mesh-steals-namespace", "a second mesh selecting the walkthrough's namespace",
        dump(with_value(MESH, "spec.namespaceSelector", {"matchLabels": {"mesh": "my-app-mesh"}})))
    add("gateway-steals-pods", "a second gateway whose podSelector takes the walkthrough gateway's pods",
        dump(with_value(GATEWAY, "spec.podSelector", {"matchLabels": {"app": "appmesh-gateway"}})))
    add("node-steals-pods", "a second virtual node selecting product-service's pods",
        dump(with_value(NODE, "spec.podSelector", {"matchLabels": {"app": "product-service"}})))

    # -- API requests -------------------------------------------------------------------------------
    r = []

    def req(slug, what, **spec):
        spec = {"description": what, "target": spec.pop("target", "v1"), **spec}
        spec.setdefault("expect", "rejected")
        r.append((slug, spec))

    j = {"Content-Type": "application/json"}
    req("apply-not-json", "a body that is not JSON", method="POST", path="/v1/apply", headers=j, body_text="texts: [a]")
    req("apply-json-array", "a JSON array body", method="POST", path="/v1/apply", headers=j, body=[1, 2])
    req("apply-json-string", "a JSON string body", method="POST", path="/v1/apply", headers=j, body="texts")
    req("apply-json-null", "a JSON null body", method="POST", path="/v1/apply", headers=j, body=None)
    req("apply-texts-int", "texts as a number", method="POST", path="/v1/apply", headers=j, body={"texts": 5})
    req("apply-texts-string", "texts as a string", method="POST", path="/v1/apply", headers=j, body={"texts": "kind: Mesh"})
    req("apply-texts-map", "texts as a map", method="POST", path="/v1/apply", headers=j, body={"texts": {"a": "b"}})
    req("apply-texts-ints", "a [name, text] pair of numbers", method="POST", path="/v1/apply", headers=j, body={"texts": [[1, 2]]})
    req("apply-texts-one", "a pair with one element", method="POST", path="/v1/apply", headers=j, body={"texts": [["a"]]})
    req("apply-texts-three", "a pair with three elements", method="POST", path="/v1/apply", headers=j,
        body={"texts": [["a", "b", "c"]]})
    req("apply-texts-null-text", "a null text", method="POST", path="/v1/apply", headers=j, body={"texts": [["a", None]]})
    req("apply-texts-nested", "a text that is a list", method="POST", path="/v1/apply", headers=j,
        body={"texts": [["a", ["kind: Mesh"]]]})
    req("apply-deep-json", "100,000 nested JSON arrays", method="POST", path="/v1/apply", headers=j,
        body_text={"$join": [{"$repeat": "[", "times": 100000}, {"$repeat": "]", "times": 100000}]})
    req("apply-deep-json-texts", "texts nested 50,000 deep", method="POST", path="/v1/apply", headers=j,
        body_text={"$join": ["{\"texts\": ", {"$repeat": "[", "times": 50000}, {"$repeat": "]", "times": 50000}, "}"]})
    req("apply-deep-flow-yaml", "a manifest of 100,000 nested flow lists", method="POST", path="/v1/apply", headers=j,
        body={"texts": [["deep.yaml", {"$join": [{"$repeat": "[", "times": 100000}, {"$repeat": "]", "times": 100000}]}]]})
    req("apply-unclosed-yaml", "a manifest of 100,000 unclosed brackets", method="POST", path="/v1/apply", headers=j,
        body={"texts": [["deep.yaml", {"$repeat": "[", "times": 100000}]]})
    req("apply-text-over-4mib", "one 5 MiB manifest", method="POST", path="/v1/apply", headers=j,
        body={"texts": [["big.yaml", {"$join": ["kind: GatewayRoute\nx: ", {"$repeat": "a", "times": 5 * 1024 * 1024}]}]]})
    req("apply-many-texts", "10,000 broken texts", method="POST", path="/v1/apply", headers=j,
        body={"texts": {"$list": ["f.yaml", "kind: [\n"], "times": 10000}})
    req("apply-surrogate", "a lone surrogate (invalid UTF-8) in a text", method="POST", path="/v1/apply", headers=j,
        body_text='{"texts": [["a.yaml", "kind: GatewayRoute\\nx: \\udc80"]]}')
    req("apply-invalid-utf8", "invalid UTF-8 bytes in the JSON body", method="POST", path="/v1/apply", headers=j,
        body_b64="eyJ0ZXh0cyI6IFtbImEiLCAi/v8iXV19")
    req("apply-dry-run-object", "dry_run as an object with a broken text", method="POST", path="/v1/apply", headers=j,
        body={"texts": [["a", "kind: [\n"]], "dry_run": {"a": 1}})
    req("apply-empty-texts", "an empty list of texts", method="POST", path="/v1/apply", headers=j, body={"texts": []},
        expect="unchanged")
    req("apply-empty-body", "no body at all", method="POST", path="/v1/apply", headers=j, expect="unchanged")
    req("apply-content-length-negative", "Content-Length: -1", method="POST", path="/v1/apply",
        headers={"Content-Length": "-1"}, body_text="{}")
    req("apply-content-length-text", "Content-Length: abc", method="POST", path="/v1/apply",
        headers={"Content-Length": "abc"}, body_text="{}")
    req("apply-content-length-huge", "Content-Length of 100 GB with a tiny body", method="POST", path="/v1/apply",
        headers={"Content-Length": "100000000000"}, body_text="{}")
    req("apply-chunked", "a chunked body (the server reads Content-Length only)", method="POST", path="/v1/apply",
        raw="POST /v1/apply HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "10\r\n{\"texts\": [[\"a\",\r\n0\r\n\r\n", expect="unchanged")
    req("apply-smuggle", "Content-Length and Transfer-Encoding together, a second request hidden in the body",
        raw="POST /v1/apply HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n\r\nPOST /v1/delete HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n"
            "{\"keys\": [[\"GatewayRoute\", \"appmesh-demo\", \"product-gateway-route\"]]}", expect="unchanged")
    req("apply-get", "GET on the apply endpoint", method="GET", path="/v1/apply")
    req("apply-put", "PUT on the apply endpoint", method="PUT", path="/v1/apply", headers=j, body={"texts": []})
    req("delete-keys-ints", "delete keys that are numbers", method="POST", path="/v1/delete", headers=j, body={"keys": [1]})
    req("delete-keys-short", "a delete key with one element", method="POST", path="/v1/delete", headers=j, body={"keys": [["a"]]})
    req("delete-keys-string", "delete keys as a string", method="POST", path="/v1/delete", headers=j, body={"keys": "abc"})
    req("delete-keys-nested", "a delete key of lists", method="POST", path="/v1/delete", headers=j,
        body={"keys": [[["GatewayRoute"], [NS], ["product-gateway-route"]]]})
    req("delete-traversal-name", "a delete of ../../ names (nothing there)", method="POST", path="/v1/delete", headers=j,
        body={"keys": [["Deployment", "../..", "../../etc"]]}, expect="unchanged")
    req("delete-sql-injection", "SQL in a delete key", method="POST", path="/v1/delete", headers=j,
        body={"keys": [["GatewayRoute", NS, "x' OR '1'='1"]]}, expect="unchanged")
    req("resources-sql-injection", "SQL in the resources query", method="GET",
        path="/v1/resources?kind=GatewayRoute'%20OR%20'1'='1&namespace=%00", expect="unchanged")
    req("events-limit-text", "events limit=abc", method="GET", path="/v1/events?limit=abc")
    req("events-limit-negative", "events limit=-1", method="GET", path="/v1/events?limit=-1")
    req("events-limit-overflow", "events limit beyond 64 bits (clamped)", method="GET", path="/v1/events?limit=" + "9" * 40,
        expect="unchanged")
    req("events-limit-unicode-digit", "events limit in superscript digits", method="GET", path="/v1/events?limit=%C2%B2")
    req("kill-no-process", "kill without a process", method="POST", path="/v1/kill", headers=j, body={})
    req("kill-bad-signal-text", "kill with signal \"z\"", method="POST", path="/v1/kill", headers=j,
        body={"process": f"{NS}/x/app", "signal": "z"})
    req("kill-bad-signal-number", "kill with signal 999", method="POST", path="/v1/kill", headers=j,
        body={"process": f"{NS}/x/app", "signal": 999})
    req("kill-signal-list", "kill with a list as the signal", method="POST", path="/v1/kill", headers=j,
        body={"process": f"{NS}/x/app", "signal": [9]})
    req("kill-process-traversal", "kill ../../ (no such process)", method="POST", path="/v1/kill", headers=j,
        body={"process": "../../../init", "signal": 9})
    req("kill-process-object", "kill with an object as the process", method="POST", path="/v1/kill", headers=j,
        body={"process": {"pid": 1}})
    req("proxy-unknown", "an unknown proxy", method="GET", path="/v1/proxy?proxy=%2e%2e%2f%2e%2e")
    req("unknown-endpoint", "an endpoint that does not exist", method="GET", path="/v1/../../etc/passwd")
    req("unknown-method", "a method the server does not know", method="PATCH", path="/v1/apply", headers=j, body={"texts": []})
    req("long-url", "a 70 kB URL", method="GET", path={"$join": ["/v1/status?", {"$repeat": "a", "times": 70000}]},
        expect="unchanged")
    req("many-headers", "200 request headers",
        raw={"$join": ["GET /v1/status HTTP/1.1\r\nHost: x\r\n", {"$repeat": "X-A: b\r\n", "times": 200}, "\r\n"]})
    req("huge-header", "a 100 kB header line",
        raw={"$join": ["GET /v1/status HTTP/1.1\r\nHost: x\r\nX-A: ", {"$repeat": "b", "times": 100000}, "\r\n\r\n"]})
    req("bad-request-line", "a request line that is not HTTP", raw="HELLO\r\n\r\n")
    req("bad-http-version", "HTTP/9.9", raw="GET /v1/status HTTP/9.9\r\nHost: x\r\n\r\n")
    req("binary-garbage", "binary garbage on the socket", raw="\u0000\u0001\u0002\u00ff\u00fe" * 200)
    req("tls-to-plain", "a TLS ClientHello to the plain-HTTP API",
        raw="\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003" + "\u0000" * 32)
    # the App Mesh API (sent when lab/api/appmesh.py exists), signed with the lab's credentials unless the
    # case says `unsigned`. AWS documents names as 1-255 characters; the lab also refuses '/' (it separates
    # the parts of an ARN) and control characters, and clientTokens beyond App Mesh's 36 characters
    a = {"Content-Type": "application/json"}
    req("appmesh-create-mesh-not-json", "CreateMesh with a body that is not JSON", target="appmesh", method="PUT",
        path="/v20190125/meshes", headers=a, body_text="meshName: x")
    req("appmesh-create-mesh-array", "CreateMesh with a JSON array", target="appmesh", method="PUT",
        path="/v20190125/meshes", headers=a, body=[1])
    req("appmesh-create-mesh-name-int", "CreateMesh with meshName 5", target="appmesh", method="PUT",
        path="/v20190125/meshes", headers=a, body={"meshName": 5})
    req("appmesh-create-mesh-name-traversal", "CreateMesh named ../../x", target="appmesh", method="PUT",
        path="/v20190125/meshes", headers=a, body={"meshName": "../../x"})
    req("appmesh-create-mesh-name-long", "CreateMesh with a 300-character name", target="appmesh", method="PUT",
        path="/v20190125/meshes", headers=a, body={"meshName": "m" * 300})
    req("appmesh-create-mesh-name-control", "CreateMesh with a newline in the name", target="appmesh", method="PUT",
        path="/v20190125/meshes", headers=a, body={"meshName": "a\nb"})
    req("appmesh-create-mesh-missing-name", "CreateMesh without meshName", target="appmesh", method="PUT",
        path="/v20190125/meshes", headers=a, body={})
    req("appmesh-create-mesh-spec-string", "CreateMesh with spec as a string", target="appmesh", method="PUT",
        path="/v20190125/meshes", headers=a, body={"meshName": "hostile-api", "spec": "x"})
    req("appmesh-create-mesh-egress-bad", "CreateMesh with an unknown egress filter", target="appmesh", method="PUT",
        path="/v20190125/meshes", headers=a, body={"meshName": "hostile-api", "spec": {"egressFilter": {"type": "NOPE"}}})
    req("appmesh-create-mesh-tags-bad", "CreateMesh with tags of the wrong shape", target="appmesh", method="PUT",
        path="/v20190125/meshes", headers=a, body={"meshName": "hostile-api", "tags": "a=b"})
    req("appmesh-create-mesh-deep", "CreateMesh with a body nested 50,000 deep", target="appmesh", method="PUT",
        path="/v20190125/meshes", headers=a,
        body_text={"$join": ["{\"meshName\": \"x\", \"spec\": ", {"$repeat": "[", "times": 50000},
                             {"$repeat": "]", "times": 50000}, "}"]})
    req("appmesh-create-mesh-huge", "CreateMesh with a 20 MB clientToken", target="appmesh", method="PUT",
        path="/v20190125/meshes", headers=a, body={"meshName": "hostile-api", "clientToken": {"$repeat": "t", "times": 20000000}})
    req("appmesh-describe-traversal", "DescribeMesh of ..%2F..%2Fetc", target="appmesh", method="GET",
        path="/v20190125/meshes/..%2F..%2Fetc")
    req("appmesh-describe-missing", "DescribeMesh of a mesh that does not exist", target="appmesh", method="GET",
        path="/v20190125/meshes/no-such-mesh")
    req("appmesh-list-limit-text", "ListMeshes limit=abc", target="appmesh", method="GET", path="/v20190125/meshes?limit=abc")
    req("appmesh-list-limit-negative", "ListMeshes limit=-5", target="appmesh", method="GET", path="/v20190125/meshes?limit=-5")
    req("appmesh-list-limit-huge", "ListMeshes limit=10^40", target="appmesh", method="GET",
        path="/v20190125/meshes?limit=" + "1" * 40)
    req("appmesh-list-token-garbage", "ListMeshes with a garbage nextToken", target="appmesh", method="GET",
        path="/v20190125/meshes?nextToken=%FF%FE%00garbage")
    req("appmesh-unknown-path", "an App Mesh path that does not exist", target="appmesh", method="GET",
        path="/v20190125/nothing/here")
    req("appmesh-wrong-method", "DELETE on the mesh collection", target="appmesh", method="DELETE", path="/v20190125/meshes")
    req("appmesh-gr-spec-types", "CreateGatewayRoute with every spec field of the wrong type", target="appmesh",
        method="PUT", path="/v20190125/meshes/my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo/gatewayRoutes",
        headers=a, body={"gatewayRouteName": "hostile", "spec": {"httpRoute": {"match": {"prefix": 5}, "action": []}}})
    req("appmesh-gr-name-slash", "CreateGatewayRoute named a/b", target="appmesh", method="PUT",
        path="/v20190125/meshes/my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo/gatewayRoutes", headers=a,
        body={"gatewayRouteName": "a/b", "spec": {"httpRoute": {"match": {"prefix": "/x"}, "action": {"target": {
            "virtualService": {"virtualServiceName": "product-service.appmesh-demo.svc.cluster.local"}}}}}})
    req("appmesh-gr-regex-invalid", "CreateGatewayRoute with a regex RE2 refuses", target="appmesh", method="PUT",
        path="/v20190125/meshes/my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo/gatewayRoutes", headers=a,
        body={"gatewayRouteName": "hostile-rx", "spec": {"httpRoute": {"match": {"path": {"regex": "/a{1001}"}},
              "action": {"target": {"virtualService": {"virtualServiceName": "product-service.appmesh-demo.svc.cluster.local"}}}}}})
    req("appmesh-gr-unknown-gateway", "CreateGatewayRoute on a gateway that does not exist", target="appmesh",
        method="PUT", path="/v20190125/meshes/my-app-mesh/virtualGateway/nope/gatewayRoutes", headers=a,
        body={"gatewayRouteName": "hostile", "spec": {}})
    req("appmesh-update-mesh-version", "UpdateMesh of the walkthrough mesh with a broken spec", target="appmesh",
        method="PUT", path="/v20190125/meshes/my-app-mesh", headers=a, body={"spec": {"egressFilter": {"type": 7}}})
    req("appmesh-content-length-negative", "an App Mesh request with Content-Length: -1", target="appmesh",
        method="PUT", path="/v20190125/meshes", headers={"Content-Length": "-1"}, body_text="{}")
    req("appmesh-tag-resource-bad-arn", "TagResource with an ARN that is not one", target="appmesh", method="PUT",
        path="/v20190125/tag?resourceArn=not-an-arn", headers=a, body={"tags": [{"key": "a", "value": "b"}]})

    # conflicting concurrent applies of one resource
    versions = [dump(with_value(with_value(with_value(ROUTE, "metadata.name", "contested"), "spec.httpRoute.match.prefix",
                                           f"/contested-{i}"), "metadata.labels", {"version": f"v{i}"}))
                for i in range(8)]
    invalid = [dump(with_value(with_value(ROUTE, "metadata.name", "contested"), "spec.httpRoute.match.prefix", "no-slash")),
               dump(with_value(with_value(ROUTE, "metadata.name", "contested"), "spec.httpRoute", [1]))]
    # the App Mesh API's own limits and its signature (added later: appended, so earlier files keep their numbers)
    req("appmesh-create-mesh-token-1mb", "CreateMesh with a 1 MB clientToken (App Mesh allows 36 characters)",
        target="appmesh", method="PUT", path="/v20190125/meshes", headers=a,
        body={"meshName": "hostile-api", "clientToken": {"$repeat": "t", "times": 1000000}})
    req("appmesh-create-mesh-arn-of-another", "CreateMesh named like the ARN path of the walkthrough's gateway",
        target="appmesh", method="PUT", path="/v20190125/meshes", headers=a,
        body={"meshName": "my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo"})
    req("appmesh-unsigned", "CreateMesh without a signature", target="appmesh", method="PUT", path="/v20190125/meshes",
        headers=a, body={"meshName": "hostile-unsigned"}, unsigned=True)
    req("appmesh-forged-signature", "CreateMesh signed with a made-up key", target="appmesh", method="PUT",
        path="/v20190125/meshes", headers={**a, "X-Amz-Date": "20260101T000000Z", "Authorization":
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-west-2/appmesh/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64}, body={"meshName": "hostile-forged"}, unsigned=True)
    conflicts = [("conflict-gateway-route", {"description": "threads applying 8 versions (and 2 invalid ones) of one "
                                             "gateway route at once", "resource": {"kind": "GatewayRoute", "name": "contested",
                                                                                   "namespace": NS},
                                             "versions": versions, "invalid": invalid})]
    vs_versions = [dump(with_value(with_value(SERVICE, "metadata.name", "contested-service"), "spec.provider",
                                   {"virtualNode": {"virtualNodeRef": {"name": n}}}))
                   for n in ("product-service-vn", "review-service-vn")]
    vs_invalid = [dump(with_value(with_value(SERVICE, "metadata.name", "contested-service"), "spec.provider",
                                  {"virtualNode": {"virtualNodeRef": {"name": "product-service-vn"}},
                                   "virtualRouter": {"virtualRouterRef": {"name": "x"}}}))]
    conflicts.append(("conflict-virtual-service", {"description": "threads switching one virtual service between two "
                                                   "providers, with an invalid two-provider version among them",
                                                   "resource": {"kind": "VirtualService", "name": "contested-service",
                                                                "namespace": NS},
                                                   "versions": vs_versions, "invalid": vs_invalid}))
    return m, r, conflicts


def _nest(depth: int):
    d: dict = {}
    cur = d
    for _ in range(depth):
        cur["n"] = {}
        cur = cur["n"]
    return d


def render() -> dict:
    """file name -> bytes, the whole corpus."""
    manifests, requests, conflicts = cases()
    files = {}
    n = 0
    for slug, what, expect, text in manifests:
        n += 1
        head = f"# hostile: {what}\n# expect: {expect}\n".replace("\r", " ")
        head = "".join(ch if ch == "\n" or ch.isprintable() else "?" for ch in head)
        files[f"{n:03d}-{slug}.yaml"] = (head + text).encode("utf-8", "surrogatepass")
    for slug, spec in requests + conflicts:
        n += 1
        files[f"{n:03d}-{slug}.json"] = (json.dumps(spec, indent=1, ensure_ascii=True) + "\n").encode()
    return files


def main(argv=None) -> int:
    files = render()
    CORPUS.mkdir(exist_ok=True)
    for old in CORPUS.glob("*"):
        if old.name not in files:
            old.unlink()
    for name, data in files.items():
        (CORPUS / name).write_bytes(data)
    print(f"wrote {len(files)} files to {CORPUS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
