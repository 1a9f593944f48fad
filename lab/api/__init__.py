"""The App Mesh REST API (2019-01-25) served by the lab daemon.

    appmesh.py      handle(): the operations, and the mapping of API resources onto the store (read it first)
    sigv4.py        every request's SigV4 signature, verified with botocore's signer (and `sign` for raw clients)
    credentials.py  the lab's key pair and profile appmesh-lab in <lab home>/aws/ (made at `up`)
    limits.py       input limits beyond the service model: clientToken, names (no two resources share an ARN)
    idempotency.py  clientToken records, which expire after 24 hours
    service.py      botocore's service model driving routing, parsing, validation and response shapes
    mapping.py      families, lookups in the store, namespace placement, API metadata in the kv table
    convert.py      API spec <-> CRD spec, API names <-> Kubernetes names
    quotas.py       App Mesh service quotas (APPMESH_LAB_API_QUOTAS)
    errors.py       the API's errors as the lab's exception types, and their HTTP form
"""
