"""Implementation profiles: what each Gateway API implementation supports, as data.

The exporter writes standard-channel Gateway API v1.6.1; a profile only decides which parts of
that output an implementation documents as unsupported (a finding each) and which of its own
features is the nearest home for what Gateway API cannot say. Sources (read 2026-12):

  standard       Gateway API v1.6.1, standard channel (the CRDs in reference/gateway-api/):
                 HTTPRoute path types Exact, PathPrefix, RegularExpression; header and query
                 types Exact and RegularExpression (RegularExpression is "implementation-specific"
                 support); URLRewrite (hostname, ReplaceFullPath, ReplacePrefixMatch) is Extended;
                 timeouts.request is Extended; GRPCRoute has no URLRewrite filter; retries
                 (GEP-1731, rules[].retry) are experimental-channel only.
  vpc-lattice    AWS Gateway API Controller, docs/api-types/http-route.md
                 (github.com/aws/aws-application-networking-k8s): matches by exact path, path
                 prefix, one method per rule and headers; "Matching by QueryParameters is not
                 supported"; at most 5 header matches per rule; "All path matches are currently
                 case-insensitive". VPC Lattice's own rule model (API_HttpMatch, API_PathMatch)
                 has no regular expressions. Health checks live on the target group
                 (TargetGroupPolicy), authentication on IAM auth policies (IAMAuthPolicy).
  istio          Istio's Gateway API support (istio.io, "Gateway API" task; conformance report
                 for v1.2+ lists HTTPRoute host and path rewrite, method and query matching,
                 request timeouts). Regular expressions are RE2. Outlier detection and
                 connection pools: DestinationRule.trafficPolicy; mesh mTLS: PeerAuthentication;
                 access logs: Telemetry.
  envoy-gateway  Envoy Gateway (gateway.envoyproxy.io): full HTTPRoute matching incl. RE2
                 regular expressions; BackendTrafficPolicy carries retries ("Retry" task: the
                 core Gateway API retry takes precedence since v1.3), circuit breakers,
                 active health checks and passive health checks (outlier detection);
                 ClientTrafficPolicy carries client-side settings (timeouts, TLS, mTLS
                 validation); BackendTLSPolicy (Gateway API) carries TLS to backends; access
                 logs: EnvoyProxy telemetry.
"""
from __future__ import annotations

PROFILES: dict[str, dict] = {
    "standard": {
        "gateway_class": "my-gateway-class",
        "regex_path": True, "regex_header": True, "regex_query": True, "query": True,
        "frontend_tls": True,
        "url_rewrite": True, "request_timeout": True, "max_headers": 16,
        "near": {
            "outlier": "an implementation-specific policy (Gateway API has none)",
            "pool": "an implementation-specific policy (Gateway API has none)",
            "health": "an implementation-specific policy (Gateway API has none)",
            "mtls": "BackendTLSPolicy for TLS to backends; mesh mTLS is the mesh implementation's",
            "client_cert": "Gateway.spec.tls.frontend (GEP-91, in the v1.6.1 standard CRDs): perPort[].tls.validation."
                           "caCertificateRefs naming a ConfigMap with the CA under the key ca.crt",
            "client_san": "an implementation-specific policy (Gateway API has none)",
            "retry": "rules[].retry in the experimental channel (GEP-1731)",
            "logging": "the implementation's access log settings",
            "egress": "the implementation's egress policy (Gateway API has none)",
        },
    },
    "vpc-lattice": {
        "gateway_class": "amazon-vpc-lattice",
        "regex_path": False, "regex_header": False, "regex_query": False, "query": False,
        "frontend_tls": False,
        "url_rewrite": False, "request_timeout": False, "max_headers": 5,
        "near": {
            "outlier": "VPC Lattice target-group health checks (TargetGroupPolicy.spec.healthCheck)",
            "pool": "none: VPC Lattice manages connections itself",
            "health": "TargetGroupPolicy.spec.healthCheck (target-group health checks)",
            "mtls": "VPC Lattice auth policies (IAMAuthPolicy) and HTTPS listeners; no mesh mTLS",
            "client_cert": "none documented for VPC Lattice listeners; IAM auth policies (IAMAuthPolicy) "
                           "authenticate callers instead",
            "client_san": "none documented for VPC Lattice",
            "retry": "none documented for VPC Lattice",
            "logging": "VPC Lattice access logs (AccessLogPolicy)",
            "egress": "VPC Lattice service-network associations and auth policies",
        },
    },
    "istio": {
        "gateway_class": "istio",
        "regex_path": True, "regex_header": True, "regex_query": True, "query": True,
        "frontend_tls": False,
        "url_rewrite": True, "request_timeout": True, "max_headers": 16,
        "near": {
            "outlier": "DestinationRule.spec.trafficPolicy.outlierDetection",
            "pool": "DestinationRule.spec.trafficPolicy.connectionPool",
            "health": "Kubernetes readiness probes (Istio has no active health checks) and outlier detection",
            "mtls": "PeerAuthentication (STRICT) and DestinationRule.spec.trafficPolicy.tls",
            "client_cert": "Gateway.spec.tls.frontend where the Istio release serves it; Istio's own Gateway: "
                           "tls.mode MUTUAL with a credentialName Secret holding ca.crt",
            "client_san": "Istio's own Gateway: tls.subjectAltNames",
            "retry": "Istio's default retries, or a VirtualService retries block",
            "logging": "the Telemetry API (accessLogging)",
            "egress": "Sidecar.spec.outboundTrafficPolicy (REGISTRY_ONLY) and ServiceEntry",
        },
    },
    "envoy-gateway": {
        "gateway_class": "eg",
        "regex_path": True, "regex_header": True, "regex_query": True, "query": True,
        "frontend_tls": False,
        "url_rewrite": True, "request_timeout": True, "max_headers": 16,
        "near": {
            "outlier": "BackendTrafficPolicy.spec.healthCheck.passive",
            "pool": "BackendTrafficPolicy.spec.circuitBreaker",
            "health": "BackendTrafficPolicy.spec.healthCheck.active",
            "mtls": "BackendTLSPolicy (TLS to backends) and ClientTrafficPolicy.spec.tls.clientValidation",
            "client_cert": "ClientTrafficPolicy.spec.tls.clientValidation.caCertificateRefs",
            "client_san": "ClientTrafficPolicy.spec.tls.clientValidation (no SAN list documented)",
            "retry": "BackendTrafficPolicy.spec.retry",
            "logging": "EnvoyProxy.spec.telemetry.accessLog",
            "egress": "none: Envoy Gateway is not a mesh",
        },
    },
}


def names() -> list[str]:
    return list(PROFILES)
