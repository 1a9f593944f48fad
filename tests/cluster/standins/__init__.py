"""Stand-ins for a kind cluster, so the lessons' kind code paths run in CI: **a recording, not a cluster.**

    env = StandInCluster(tmp_path); env.start()        # PATH, KUBECONFIG, ... in env.environ
    ... run the real notebooks with TARGET=kind ...
    env.stop()

What stands in for what:

* `kubectl`, `helm`, `kind`, `eksctl`, `docker` (bin/): executables first on PATH. Each one
  checks every argument it receives against the flags the real tool has for that verb (an
  unknown verb or flag is the real tool's error, exit 1), and `kubectl apply -f` checks every
  object: Kubernetes kinds against the `kubernetes` client's models (tests/controller/k8s_schema),
  App Mesh kinds against the CRDs' openAPIV3Schema in manifests/crds/ and then the kit's
  validator (what the chart's validating webhook runs). `helm` checks the chart renders with the
  values given (the real helm, `helm template`, when it is available); `kind` the cluster config;
  `docker build` the Dockerfile and context.
* The Kubernetes API (apiserver.py): an HTTP server at the REST paths the `kubernetes` client
  uses. Its nodes and its controller are **the local lab**: objects that pass the checks are
  applied to a real lab daemon, one object at a time as kubectl does (so an apply is not
  all-or-nothing, as on a cluster), and what the API answers — App Mesh statuses, Deployments'
  replicas, Pods and their containers, Events, container logs, Envoy's admin through the pod
  proxy — is read from that lab. Real Envoys route the traffic.
* kind's published ports: the node's NodePorts 30080-30083 are TCP forwarders to the lab's
  address of the Service holding that NodePort; `docker port <cluster>-control-plane` answers
  where they listen, as docker does for a real kind node.

What it is not: an API server (no admission chain, no controllers, no scheduling, no pod
network: a pod's port is a port on 127.0.0.1), and no image is built or pulled.
"""
