# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · The control plane, in place of the App Mesh controller
#
# On EKS, the guide's next step installs the AWS App Mesh controller. This lesson explains what
# that controller did, why its installation steps no longer lead anywhere, and installs the kit's
# control plane instead.
#
# The next cell holds the parameters (papermill and `appmesh-lab e2e` override them). The cell after it brings the target to the state this lesson starts from — a running cluster or lab (notebook 01) — so you can open this notebook on its own. It is safe to run it again.

# %% tags=["parameters"]
# Parameters: papermill and `appmesh-lab e2e -p NAME VALUE` override these.
TARGET = "local"                       # local | kind | eks
NAMESPACE = "appmesh-demo"             # the walkthrough's namespace (manifests/walkthrough/)
CLUSTER_NAME = "appmesh-gateway-demo"  # kind / EKS cluster name
REGION = "us-west-2"                   # AWS region (EKS), and the region in the lab's ARNs
LAB_HOME = None                        # local lab state directory; None: $APPMESH_LAB_HOME or .lab/
TIMEOUT_S = 30                         # how long a check waits for the mesh to converge

# %%
from lab import notebook as nb

t = nb.setup(TARGET, stage="01", namespace=NAMESPACE, cluster_name=CLUSTER_NAME, region=REGION,
             lab_home=LAB_HOME, timeout_s=TIMEOUT_S)

# %% [markdown]
# ## What the App Mesh controller did
#
# 1. **Custom resource definitions.** It registered the six `appmesh.k8s.aws/v1beta2` kinds
#    with the Kubernetes API.
# 2. **Reconciling.** For each custom resource it created or updated the matching App Mesh
#    object through the App Mesh API, and wrote the result back: an ARN and a condition such as
#    `GatewayRouteActive=True`.
# 3. **Admission webhooks.** It validated resources, filled in read-only fields (the mesh a
#    resource belongs to, the gateway a route attaches to, default AWS names), and injected an
#    Envoy container into each new pod that matched a virtual node.
# 4. **Envoy configuration** came from AWS: every injected Envoy connected to the App Mesh Envoy
#    management service in its region and received its listeners, routes and clusters there.
#
# ## The guide's steps, for reference
#
# These were the steps on EKS. **Do not run them now.**
#
# ```sh
# helm repo add eks https://aws.github.io/eks-charts
# aws iam create-policy --policy-name AWSAppMeshControllerPolicy \
#     --policy-document file://appmesh-controller-policy.json      # appmesh:* and ec2:DescribeInstances
# eksctl create iamserviceaccount --cluster $CLUSTER_NAME --namespace appmesh-system \
#     --name appmesh-controller --attach-policy-arn arn:aws:iam::<account>:policy/AWSAppMeshControllerPolicy \
#     --override-existing-serviceaccounts --approve
# helm upgrade -i appmesh-controller eks/appmesh-controller --namespace appmesh-system \
#     --set region=$AWS_REGION --set serviceAccount.create=false --set serviceAccount.name=appmesh-controller
# ```
#
# Why they no longer lead anywhere:
#
# * The controller's reconcilers call the App Mesh API, which is gone. Every resource stays
#   uncreated: no ARN, and its `...Active` condition never becomes `True`.
# * The sidecars it injects are set up to fetch their configuration from the App Mesh Envoy
#   management endpoint, which is gone too. They start, and never get a listener.
# * The IAM policy and the service account only granted access to that API. There is nothing
#   left for them to grant.
#
# ## What the kit installs instead
#
# The kit's Helm chart, `manifests/charts/appmesh-lab-controller`, installs the same CRDs
# (generated from the kit's model of the v1beta2 API), admission webhooks with the controller's
# rules (validation, read-only fields, sidecar injection), and the control plane that serves
# Envoy configuration inside the cluster. No AWS account is involved.
#
# On a cluster the next cell installs the chart (`helm upgrade -i`). On `local` the control plane
# is part of the lab daemon you started in notebook 01, so there is nothing to install; the cell
# checks the chart instead, as you would before installing it anywhere: `helm lint`, then
# `helm template` renders every object the chart would create, and the cell checks them — the
# six CRDs, the controller's Deployment, and the two admission webhooks (validating and mutating:
# the sidecar injector) pointing at the controller's Service.

# %%
import yaml

if TARGET == "local":
    lint = nb.helm("lint", nb.CHART)
    rendered = nb.helm("template", "appmesh-lab-controller", nb.CHART, "--namespace", "appmesh-system",
                       "--include-crds", show=False)
    if lint is not None:
        assert lint.returncode == 0 and "0 chart(s) failed" in lint.stdout, lint.stdout + lint.stderr
        assert rendered.returncode == 0, rendered.stderr
        objects = [d for d in yaml.safe_load_all(rendered.stdout) if d]
        nb.table([[d["kind"], d["metadata"]["name"], d["metadata"].get("namespace", "(cluster)")] for d in objects],
                 ["kind", "name", "namespace"])
        kinds = {d["kind"] for d in objects}
        crds = sorted(d["spec"]["names"]["kind"] for d in objects if d["kind"] == "CustomResourceDefinition")
        assert crds == sorted(nb.APPMESH_KINDS), crds
        assert "Deployment" in kinds and "ServiceAccount" in kinds, kinds
        hooks = [d for d in objects if d["kind"] in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")]
        assert {d["kind"] for d in hooks} == {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}, kinds
        services = {(d["metadata"]["name"], d["metadata"].get("namespace")) for d in objects if d["kind"] == "Service"}
        for d in hooks:
            for w in d["webhooks"]:
                svc = w["clientConfig"]["service"]
                assert (svc["name"], svc["namespace"]) in services, (w["name"], svc, services)
        print(f"{len(objects)} objects: {len(crds)} CRDs, the controller, {len(hooks)} webhook configurations "
              f"({sum(len(d['webhooks']) for d in hooks)} webhooks), each pointing at a Service the chart creates")
    print("(local target: the control plane runs inside the lab daemon; nothing is installed)")
else:
    nb.install_controller(t)
    nb.cluster_step(t, "kubectl -n appmesh-system get pods")
    d = t.get("Deployment", "appmesh-lab-controller", "appmesh-system")
    assert d and (d[0].get("status") or {}).get("readyReplicas", 0) >= 1, "the controller is not ready"

# %% [markdown]
# ## The custom resource definitions
#
# Whatever the target, the resources are checked against the same definitions. They live in
# `manifests/crds/`, generated from the kit's model (`appmesh-lab crds --write`), one file per
# kind. A GatewayRoute's `httpRoute`, for example, requires both `match` and `action` — the
# first of many rules you will meet.

# %%
import yaml

crds = sorted(p.name for p in (nb.MANIFESTS / "crds").glob("*.yaml"))
print("\n".join(crds))
assert len(crds) == 6 and all(name.startswith("appmesh.k8s.aws_") for name in crds), crds

gr_crd = yaml.safe_load((nb.MANIFESTS / "crds" / "appmesh.k8s.aws_gatewayroutes.yaml").read_text())
version = next(v for v in gr_crd["spec"]["versions"] if v["name"] == "v1beta2")
http_route = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["httpRoute"]
print("GatewayRoute spec.httpRoute requires:", http_route["required"])
assert set(http_route["required"]) == {"action", "match"}
installed = nb.cluster_step(t, "kubectl get crds", note="the daemon validates every object against the same model")
# on a cluster the API server must serve the six kinds (helm installed the CRDs); the local daemon
# reads the same files, checked above
names = {line.split()[0] for line in (installed or "").splitlines()[1:] if line.strip()}
wanted = {f"{p.stem.split('_', 1)[1]}.{p.stem.split('_', 1)[0]}" for p in (nb.MANIFESTS / "crds").glob("*.yaml")}
assert TARGET == "local" or wanted <= names, sorted(wanted - names)

# %% [markdown]
# ## The control plane at work
#
# Each Envoy identifies itself to the control plane with a node id of the form
# `mesh/<mesh>/virtualNode/<name>` or `mesh/<mesh>/virtualGateway/<name>` — the same string the
# App Mesh controller put into the `APPMESH_RESOURCE_ARN` variable of the sidecars it injected.
# The control plane keeps track, for each proxy, of the configuration version it sent and
# whether Envoy accepted it (**ACK**) or rejected it (**NACK**). No proxies exist yet: they
# appear when you deploy applications in notebook 04.

# %% tags=["volatile"]
if TARGET == "local":
    st = t.status()
    assert st["endpoints"]["xds"].startswith("unix:"), st["endpoints"]
    print(nb.tidy(f"xDS (ADS over gRPC) at {st['endpoints']['xds']} | Envoy binary: {st['envoy']}"))
    rows = nb.proxy_rows(t)
    nb.table(rows or [["(none yet)", "-", "-", "-"]], ["proxy (Envoy node id)", "connected", "ACKed", "last NACK"])
else:
    nb.cluster_step(t, "kubectl -n appmesh-system logs deploy/appmesh-lab-controller --tail 20")
    assert not t.proxies_waiting(), "a proxy has not taken its configuration"   # each replica's /status

# %% [markdown]
# The control plane is ready. Next, **03-mesh-nodes-services** gives it something to do.
