"""In-cluster mode: the kit's App Mesh-compatible controller, run by `appmesh-lab controller`.

The same control plane as the local lab, with the Kubernetes API as its store:

    informers (list + watch)  ->  cache of API objects
    cache -> model World      ->  status conditions, finalizers, events   (leader only)
    cache -> cluster Placement ->  translate -> xDS snapshots             (every replica)
    AdmissionReview (Pod CREATE) -> sidecar / gateway injection JSONPatch (every replica)
    AdmissionReview (App Mesh kinds) -> meshRef/virtualGatewayRef/awsName; the model's verdict

Modules:
  kube       the only code that talks to the API server (a thin interface, faked in tests)
  cache      informers: list, watch, relist on 410, feed a cache of plain dicts
  world      API objects -> model Resources; endpoints from EndpointSlices; the cluster Placement
  reconcile  one pure pass: objects -> statuses, finalizers, events, Envoy resources
  inject     the injector's decision and the JSONPatch it answers with (pure)
  admission  the App Mesh kinds' mutating and validating webhooks (upstream's paths)
  pod_traffic a sidecar's listeners as a pod needs them (iptables redirect to 15000/15001)
  webhook    the HTTPS admission server and its certificate
  leader     Lease-based leader election
  main       wiring, options, `appmesh-lab controller`

Images: lab/controller/Dockerfile (the controller), lab/controller/proxy_init/ (iptables init).
"""
