"""The App Mesh REST-JSON API (2019-01-25), served by the lab daemon over its own store.

    export AWS_CONFIG_FILE=<lab home>/aws/config AWS_SHARED_CREDENTIALS_FILE=<lab home>/aws/credentials
    boto3.Session(profile_name="appmesh-lab").client("appmesh")      (`appmesh-lab status` prints these)
    aws appmesh list-meshes --profile appmesh-lab

The daemon routes every request under /v20190125/ to `handle`. All 38 operations of the
service model are served: Create/Describe/Update/Delete/List for meshes, virtual nodes, virtual
services, virtual routers, routes, virtual gateways and gateway routes, and
ListTagsForResource/TagResource/UntagResource. The wire format (routes, member locations,
validation, response shapes) comes from botocore's service model (service.py).

Security: every request must carry a SigV4 signature made with the credentials the lab wrote to its
home at `up` (credentials.py; profile appmesh-lab); sigv4.py verifies it with botocore's signer and
answers 403 UnrecognizedClientException / InvalidSignatureException otherwise. The region of the
signature's credential scope is the region of the ARNs the answer shows.

ONE STORE: an API resource IS a Kubernetes-style resource in the daemon's store
----------------------------------------------------------------------------------
  meshName                 ↔ the Mesh whose aws_name() (spec.awsName, default metadata.name) equals it.
  a resource in mesh M     ↔ a VirtualNode / VirtualService / VirtualRouter / VirtualGateway in a
                             namespace whose labels M's namespaceSelector matches (and no other
                             mesh's), named by its aws_name() — the controller's defaults apply to
                             manifests: `<name>_<namespace>`, a VirtualService `<name>.<namespace>`.
  gateway route of VG G    ↔ a GatewayRoute in mesh M that attaches to G alone (G's namespaceSelector
                             matches its namespace, G's gatewayRouteSelector its labels).
  route of router R        ↔ an entry of R's spec.routes (route name verbatim).
  status ACTIVE/INACTIVE   ↔ the resource's `<Kind>Active` condition is True / not (a route: its router's).

Resources created through the API:
  - CreateMesh makes a Mesh (k8s name: the API name made DNS-safe, spec.awsName: the API name) with
    namespaceSelector {matchLabels: {appmesh.lab/mesh: <mesh>}}.
  - Other resources go into the mesh's API namespace `appmesh-api-<mesh>`, made on first use with
    the labels the mesh's namespaceSelector wants (for a mesh made as a manifest too) plus
    appmesh.lab/mesh: <mesh> and appmesh.lab/api-namespace: "true". Their Kubernetes name is the API
    name made DNS-safe (a hash suffix when it had to change or is taken), spec.awsName the API name,
    so aws_name() round-trips. They carry app.kubernetes.io/managed-by: appmesh-lab-api.
  - A VirtualGateway gets namespaceSelector {matchLabels: {appmesh.lab/mesh: <mesh>}} and
    gatewayRouteSelector = podSelector = {matchLabels: {appmesh.lab/gateway: <gateway>}} (its pods,
    if any, are Deployments a user adds with that label).
  - A GatewayRoute must attach to its gateway alone. It goes into the first of: the mesh's API
    namespace, the gateway's own namespace (the walkthrough's appmesh-demo), the mesh's other
    namespaces, a namespace `appmesh-api-<mesh>-<gateway>` made for it — where exactly that gateway
    selects it, with the labels the gateway's gatewayRouteSelector wants.
  - DeleteMesh also deletes the (empty) namespaces the API made for the mesh.
Specs are converted by convert.py (names ↔ *Ref/*ARN, the few renamed fields, API-only fields kept
in an annotation). Every write goes through `daemon.apply` / `daemon.delete`, so validation,
admission, reconcile and the xDS push are exactly those of `appmesh-lab apply`; a rejected apply
is a BadRequestException with the first finding's message and hint. What manifests change is seen
by the API at once, and the reverse.

API metadata (mapping.Index.metadata): version (1 at create, +1 per update), uid, createdAt,
lastUpdatedAt, tags and clientToken history live in the store's kv table under `api:<ARN resource
part>` (`api:mesh/m/virtualGateway/g/gatewayRoute/r`) and `api-token:<clientToken>` (idempotency.py:
records expire after 24 hours). Resources
that only came as manifests take uid and times from their record and version from its generation.
ARNs: arn:aws:appmesh:<the region the client signed for>:111122223333:mesh/<m>/… .

Limits and choices: input limits (limits.py: clientToken, names); quotas (quotas.py;
APPMESH_LAB_API_QUOTAS=off lifts them); pagination tokens
are opaque, checked, and resume after the last name returned; `meshOwner` other than the lab's
account is NotFound (no mesh sharing); references to resources that do not exist yet are accepted
(the referrer stays INACTIVE until they do), as the Kubernetes controller does.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from urllib.parse import parse_qs

import yaml

from ..model.arns import ACCOUNT, REGION
from ..store.sqlite import StoreError
from . import credentials, limits, quotas, service, sigv4
from .convert import kept_on_update, to_api, to_crd
from .errors import ApiError, BadRequest, Conflict, NotFound, ResourceInUse, TooManyTags, error_response
from .idempotency import Tokens
from .mapping import (BY_MEMBER, CHILD_KINDS, FAMILIES, GATEWAY_LABEL, MANAGED_BY, MESH_LABEL, Family, Index,
                      Item, MeshRefs, api_fields, arn, crd_doc, label_value, meta_key, with_api_fields)

_LOCK = threading.RLock()  # API calls are read-check-write sequences: one at a time
_ARN = re.compile(r"arn:aws[a-z-]*:appmesh(?:-preview)?:([^:]*):([^:]*):(mesh/.+)")
_TOKEN_CHECK = "appmesh-lab-page"  # tokens carry a checksum, so a damaged one is refused
MAX_TAGS = 50
MAX_TOKENS_LISTED = 100  # the newest clientTokens a resource's metadata lists (older records expire)

# operation name → (verb, family), for the seven resource families
VERBS = {}
for _f in FAMILIES.values():
    VERBS.update({f"Create{_f.kind}": ("create", _f), f"Describe{_f.kind}": ("describe", _f),
                  f"Update{_f.kind}": ("update", _f), f"Delete{_f.kind}": ("delete", _f),
                  f"List{_f.plural}": ("list", _f)})
TAG_OPERATIONS = {"TagResource": "tag", "UntagResource": "untag", "ListTagsForResource": "list_tags"}


def handle(daemon, method: str, path: str, query, raw_body: bytes, headers: dict):
    """One API request → (HTTP status, JSON body, extra headers). `daemon` is the lab daemon (its
    home holds the credentials; apply, delete, store and world are what the operations use);
    `path` is the path as sent (not decoded); `query` the raw query string as sent (preferred: the
    signature is checked on it exactly) or already parsed ({name: [values]})."""
    try:
        # authentication first, as AWS does: an unsigned request learns nothing, not even a route
        region = sigv4.verify(method, path, query or {}, raw_body or b"", headers or {},
                              credentials.known_keys(daemon.paths.home))
        parsed = parse_qs(query) if isinstance(query, str) else (query or {})
        op, uri_params = service.match(method, path)
        params = service.parse_input(op, uri_params, parsed, raw_body or b"", headers or {})
        limits.check(op, params)
        with _LOCK:
            out = Api(daemon, region).call(op, params)
        return op.status, service.output_body(op, out), {"x-amzn-RequestId": str(uuid.uuid4())}
    except ApiError as exc:
        return error_response(exc, service.SHAPES)
    except StoreError as exc:  # a system failure, reported as the API's InternalServerErrorException
        return error_response(ApiError(f"the lab's store failed: {exc}"), service.SHAPES)


class Api:
    """The operations, over one snapshot of the store (refreshed after each write)."""

    def __init__(self, daemon, region: str, clock=None):
        self.daemon = daemon
        self.region = region
        self.index = Index(daemon)
        self.tokens = Tokens(daemon.store, clock)

    def call(self, op: service.Operation, p: dict) -> dict:
        if op.name in TAG_OPERATIONS:
            return getattr(self, TAG_OPERATIONS[op.name])(p)
        if op.name not in VERBS:
            raise BadRequest(f"{op.name} is not served by the lab")
        if p.get("meshOwner") not in (None, ACCOUNT):
            raise NotFound(f"mesh {p.get('meshName')!r} of account {p['meshOwner']} not found: the lab has one "
                           f"account, {ACCOUNT}, and shares no meshes")
        verb, family = VERBS[op.name]
        return getattr(self, verb)(op, family, p)

    # -- reads --------------------------------------------------------------------------------

    def describe(self, op, family: Family, p: dict) -> dict:
        return {family.member: self.data(self.index.find(family, p))}

    def list(self, op, family: Family, p: dict) -> dict:
        if family.kind == "Mesh":
            items = self.index.items(family, None)
        else:
            mesh = self.index.mesh(p["meshName"])
            items = self.index.items(family, mesh, self.index.parent(family, mesh, p))
        page, token = paginate(op, items, lambda i: i.sort_key, p)
        return {family.list_key: [self.ref(i) for i in page], "nextToken": token}

    def data(self, item: Item, status: str | None = None) -> dict:
        """The `<Kind>Data` of an item: names, metadata, spec and status."""
        return {**item.names(), "metadata": self.metadata(item), "spec": self.spec(item),
                "status": {"status": status or self.index.status(item)}}

    def ref(self, item: Item) -> dict:
        """The `<Kind>Ref` of an item, as List operations return it (no spec, no status)."""
        meta = self.metadata(item)
        return {**item.names(), **{k: meta[k] for k in ("arn", "createdAt", "lastUpdatedAt", "meshOwner",
                                                         "resourceOwner", "version")}}

    def metadata(self, item: Item) -> dict:
        m = self.index.metadata(item)
        return {"arn": arn(self.region, ACCOUNT, item.path), "createdAt": m["createdAt"],
                "lastUpdatedAt": m["lastUpdatedAt"], "meshOwner": ACCOUNT, "resourceOwner": ACCOUNT,
                "uid": m["uid"], "version": m["version"]}

    def spec(self, item: Item) -> dict:
        refs = MeshRefs(self.index, item.mesh, REGION, ACCOUNT, owner=item.resource)
        fields = api_fields(item.resource)
        if item.route is not None:
            crd = {k: v for k, v in item.route.items() if k != "name"}
            return to_api("Route", crd, (fields.get("routes") or {}).get(item.name), refs)
        return to_api(item.family.kind, item.resource.spec, fields.get("spec"), refs)

    # -- writes -------------------------------------------------------------------------------

    def create(self, op, family: Family, p: dict) -> dict:
        replay = self._replay(op, family, p)
        if replay is not None:
            return replay
        name = p[family.name_key]
        if family.kind == "Mesh":
            mesh = parent = None
            if any(m.aws_name() == name for m in self.index.meshes()):
                raise Conflict(f"mesh {name!r} already exists")
            quotas.check("meshes", len(self.index.meshes()) + 1, "the account")
        else:
            mesh = self.index.mesh(p["meshName"])
            parent = self.index.parent(family, mesh, p)
            siblings = self.index.items(family, mesh, parent)
            scope = (f"{FAMILIES[family.parent].title} {parent.aws_name()!r}" if parent is not None
                     else f"mesh {mesh.aws_name()!r}")
            if any(i.name == name for i in siblings):
                raise Conflict(f"{family.title} {name!r} already exists in {scope}")
            quotas.check(f"{family.list_key}Per{family.parent or 'Mesh'}", len(siblings) + 1, scope)
        self._check_backends(family, name, p.get("spec"))
        docs = self._create_docs(family, name, mesh, parent, p.get("spec") or {})
        self._apply(op, docs)
        try:
            item = self.index.find(family, p)
        except NotFound:
            if family.kind != "Route":  # undo: what was applied does not show as the resource asked for
                self.daemon.delete([[d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]]
                                    for d in docs[-1:]])
            raise ApiError(f"the {family.title} {name!r} was stored but does not show in the mesh; "
                           "nothing was created") from None
        entry = {**self.index.metadata(item), "version": 1, "tags": merge_tags([], p.get("tags") or []), "tokens": []}
        return {family.member: self._remember(op, p, item, entry)}

    def update(self, op, family: Family, p: dict) -> dict:
        replay = self._replay(op, family, p)
        if replay is not None:
            return replay
        item = self.index.find(family, p)
        before = self.index.metadata(item)
        if "spec" in p:
            self._check_backends(family, item.name, p["spec"])
            self._apply(op, [self._update_doc(item, p["spec"])])
            item = self.index.find(family, p)
        entry = {**before, "version": before["version"] + 1, "lastUpdatedAt": time.time()}
        return {family.member: self._remember(op, p, item, entry)}

    def delete(self, op, family: Family, p: dict) -> dict:
        item = self.index.find(family, p)
        self._check_unused(item)
        data = self.data(item, status="DELETED")
        entry = self.index.metadata(item)
        if item.route is not None:
            self._pin_router(item.mesh, item.resource)
            doc = self._record_doc(item.resource)
            doc["spec"]["routes"] = [r for r in doc["spec"].get("routes") or [] if r.get("name") != item.name]
            if not doc["spec"]["routes"]:
                del doc["spec"]["routes"]
            self._apply(op, [with_api_fields(doc, route=item.name, route_extras=[])])
        else:
            keys = [list(item.resource.key)]
            self.daemon.delete(keys)
            if family.kind == "Mesh":
                self.index = Index(self.daemon)
                empty = self.index.api_namespaces(item.mesh)
                if empty:
                    self.daemon.delete([list(k) for k in empty])
        for token in entry.get("tokens") or []:
            self.tokens.drop(token)
        self.daemon.store.kv_delete(meta_key(item))
        return {family.member: data}

    def _check_unused(self, item: Item) -> None:
        """ResourceInUseException for a resource others still need (App Mesh's delete rules)."""
        kind, idx, r = item.family.kind, self.index, item.resource
        users: list = []
        if kind == "Mesh":
            users = [f"{x.kind} {x.aws_name()}" for k in CHILD_KINDS for x in idx.world.by_kind[k] if idx.in_mesh(x, r)]
        elif kind == "VirtualGateway":
            users = [f"gateway route {i.name}" for i in idx.items(FAMILIES["GatewayRoute"], item.mesh, r)]
        elif kind == "VirtualRouter" and r.spec.get("routes"):
            users = [f"route {x.get('name')}" for x in r.spec["routes"]]
        if kind in ("VirtualService", "VirtualNode", "VirtualRouter"):
            users += [f"{x.kind} {x.aws_name()}" for x in idx.referrers(r)]
        if users:
            shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
            raise ResourceInUse(f"{item.family.title} {item.name!r} is in use by {shown}; delete or change "
                                f"{'them' if len(users) > 1 else 'it'} first")

    def _check_backends(self, family: Family, name: str, spec) -> None:
        if family.kind == "VirtualNode" and isinstance(spec, dict):
            quotas.check("backendsPerVirtualNode", len(spec.get("backends") or []), f"virtual node {name!r}")

    def _create_docs(self, family: Family, name: str, mesh, parent, api_spec: dict) -> list:
        """The documents to apply for a new API resource (namespace first, if one must be made)."""
        if family.kind == "Mesh":
            spec, extras = to_crd("Mesh", api_spec, None)
            spec = {"awsName": name, "namespaceSelector": {"matchLabels": {MESH_LABEL: label_value(name)}}, **spec}
            k8s = self.index.free_name("Mesh", "", name, f"mesh/{name}")
            return [with_api_fields(crd_doc("Mesh", k8s, None, spec, labels=MANAGED_BY), extras)]
        refs = MeshRefs(self.index, mesh, REGION, ACCOUNT)
        spec, extras = to_crd(family.kind, api_spec, refs)
        if family.kind == "Route":
            self._pin_router(mesh, parent)
            doc = self._record_doc(parent)
            doc["spec"]["routes"] = list(doc["spec"].get("routes") or []) + [{"name": name, **spec}]
            return [with_api_fields(doc, route=name, route_extras=extras)]
        labels = dict(MANAGED_BY)
        if family.kind == "GatewayRoute":
            namespace, docs, gr_labels = self.index.gateway_route_home(mesh, parent)
            labels.update(gr_labels)
        else:
            namespace, _, ns_doc = self.index.api_namespace(mesh)
            docs = [ns_doc] if ns_doc else []
        spec = {"awsName": name, **spec}
        if family.kind == "VirtualGateway":
            mine = {"matchLabels": {GATEWAY_LABEL: label_value(name)}}
            spec.update(namespaceSelector={"matchLabels": {MESH_LABEL: label_value(mesh.aws_name())}},
                        gatewayRouteSelector=mine, podSelector=mine)
        salt = f"mesh/{mesh.aws_name()}/{parent.aws_name() if parent is not None else ''}/{name}"
        k8s = self.index.free_name(family.crd, namespace, name, salt)
        return docs + [with_api_fields(crd_doc(family.crd, k8s, namespace, spec, labels=labels), extras)]

    def _update_doc(self, item: Item, api_spec: dict) -> dict:
        """The stored document with the API part of its spec replaced (Update overwrites the spec)."""
        kind = item.family.kind
        spec, extras = to_crd(kind, api_spec or {}, MeshRefs(self.index, item.mesh, REGION, ACCOUNT,
                                                             owner=item.resource))
        doc = self._record_doc(item.resource)
        if item.route is not None:
            self._pin_router(item.mesh, item.resource)
            doc["spec"]["routes"] = [{"name": item.name, **spec} if r.get("name") == item.name else r
                                     for r in doc["spec"].get("routes") or []]
            return with_api_fields(doc, route=item.name, route_extras=extras)
        keep = kept_on_update(kind, service.SHAPES[f"{kind}Spec"]["members"])
        doc["spec"] = {**{k: v for k, v in doc["spec"].items() if k in keep}, **spec}
        return with_api_fields(doc, extras)

    def _pin_router(self, mesh, vr) -> None:
        """Before a route changes its router's stored spec: keep the router's API metadata in the kv
        table, so its version follows its own spec (routes excluded), not the record's generation."""
        item = Item(FAMILIES["VirtualRouter"], vr.aws_name(), mesh, None, vr)
        self.index.save_metadata(item, self.index.metadata(item))

    def _record_doc(self, r) -> dict:
        rec = self.index.record(r.key)
        if rec is None:
            raise NotFound(f"{r.kind} {r.aws_name()!r} was deleted meanwhile")
        doc = json.loads(json.dumps(rec.doc))
        doc.setdefault("spec", {})
        return doc

    def _apply(self, op, docs: list) -> None:
        """Apply documents as `appmesh-lab apply` would; a rejection is the client's BadRequest."""
        texts = [(f"appmesh-api:{op.name}", yaml.safe_dump(d, sort_keys=False)) for d in docs]
        out = self.daemon.apply(texts)
        if out.get("rejected"):
            errors = [x for x in out["problems"] if x.get("severity") == "error" and x.get("code") != "reference"] \
                or [x for x in out["problems"] if x.get("severity") == "error"] or out["problems"]
            first = errors[0] if errors else {"message": "the lab rejected the change"}
            where = f"{first['path']}: " if first.get("path") else ""
            hint = f" (hint: {first['hint']})" if first.get("hint") else ""
            more = f" [and {len(errors) - 1} more]" if len(errors) > 1 else ""
            raise BadRequest(f"{where}{first['message']}{hint}{more}")
        self.index = Index(self.daemon)

    # -- idempotency (clientToken) ------------------------------------------------------------

    def _replay(self, op, family: Family, p: dict) -> dict | None:
        """The first answer to a request repeated with its clientToken (nothing changes), or None."""
        token = p.get("clientToken")
        if not token:
            return None
        seen = self.tokens.get(token)
        if not seen:
            return None
        if seen.get("operation") != op.name or seen.get("digest") != digest(p, "clientToken"):
            raise Conflict(f"clientToken {token!r} was already used with a different request "
                           f"({seen.get('operation')}); use a new token for a new request")
        try:
            self.item_at(seen["path"])
        except NotFound:
            return None  # the resource is gone: the request runs again
        return {family.member: seen["response"]}

    def _remember(self, op, p: dict, item: Item, entry: dict) -> dict:
        """Store the API metadata of a write (and its clientToken with the answer); return the answer."""
        token = p.get("clientToken")
        if token:  # the resource lists its recent tokens, so deleting it drops their records
            entry = {**entry, "tokens": (list(entry.get("tokens") or []) + [token])[-MAX_TOKENS_LISTED:]}
        self.index.save_metadata(item, entry)
        answer = service.serialize(f"{item.family.kind}Data", self.data(item))
        if token:
            self.tokens.put(token, {"operation": op.name, "digest": digest(p, "clientToken"), "path": item.path,
                                    "response": answer})
        return answer

    # -- tags ---------------------------------------------------------------------------------

    def item_at(self, path_or_arn: str) -> Item:
        """The item an ARN (or its resource part) names."""
        m = _ARN.fullmatch(path_or_arn)
        if m:
            if m[2] != ACCOUNT:
                raise NotFound(f"{path_or_arn} not found: the lab has one account, {ACCOUNT}")
            path = m[3]
        elif path_or_arn.startswith("mesh/"):
            path = path_or_arn
        else:
            raise BadRequest(f"{path_or_arn!r} is not an App Mesh ARN (arn:aws:appmesh:<region>:<account>:mesh/…)")
        parts = path.split("/")
        if len(parts) not in (2, 4, 6) or not all(parts):
            raise BadRequest(f"{path_or_arn!r} does not name an App Mesh resource")
        params, family = {"meshName": parts[1]}, FAMILIES["Mesh"]
        for i in range(2, len(parts), 2):
            family = BY_MEMBER.get(parts[i])
            expected = (family is not None and family.kind != "Mesh"
                        and (family.parent is None) == (i == 2)
                        and (i == 2 or FAMILIES[family.parent].member == parts[i - 2]))
            if not expected:
                raise BadRequest(f"{path_or_arn!r} does not name an App Mesh resource ({parts[i]!r} is unexpected)")
            params[family.name_key] = parts[i + 1]
        return self.index.find(family, params)

    def tag(self, p: dict) -> dict:
        item = self.item_at(p["resourceArn"])
        entry = self.index.metadata(item)
        tags = merge_tags(entry.get("tags") or [], p["tags"])
        if len(tags) > MAX_TAGS:
            raise TooManyTags(f"{item.family.title} {item.name!r} would have {len(tags)} tags; at most {MAX_TAGS} "
                              "are allowed")
        self.index.save_metadata(item, {**entry, "tags": tags})
        return {}

    def untag(self, p: dict) -> dict:
        item = self.item_at(p["resourceArn"])
        entry = self.index.metadata(item)
        drop = set(p["tagKeys"])
        self.index.save_metadata(item, {**entry, "tags": [t for t in entry.get("tags") or [] if t["key"] not in drop]})
        return {}

    def list_tags(self, p: dict) -> dict:
        item = self.item_at(p["resourceArn"])
        tags = list(enumerate(self.index.metadata(item).get("tags") or []))
        page, token = paginate(service.OPERATIONS["ListTagsForResource"], tags, lambda t: [t[0]], p)
        return {"tags": [t for _, t in page], "nextToken": token}


def merge_tags(old: list, new: list) -> list:
    """Tags by key, later values winning, in first-seen order."""
    out: dict = {}
    for t in list(old) + list(new):
        out[t["key"]] = t.get("value", "")
    return [{"key": k, "value": v} for k, v in out.items()]


def digest(p: dict, *without: str) -> str:
    body = {k: v for k, v in p.items() if k not in without}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def paginate(op, items: list, key, p: dict) -> tuple[list, str | None]:
    """One page of `items` (sorted by `key`) after the position in `nextToken`, at most `limit`."""
    limit = p.get("limit") or service.page_size(op)
    after = None
    if p.get("nextToken"):
        after = decode_token(op, p["nextToken"])
        items = [i for i in items if key(i) > after]
    page = items[:limit]
    return page, (encode_token(op, key(page[-1])) if len(items) > limit else None)


def encode_token(op, after: list) -> str:
    payload = json.dumps({"op": op.name, "after": after}, separators=(",", ":"))
    check = hashlib.sha256((_TOKEN_CHECK + payload).encode()).hexdigest()[:12]
    return base64.urlsafe_b64encode(f"{check}.{payload}".encode()).decode().rstrip("=")


def decode_token(op, token: str) -> list:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        check, _, payload = text.partition(".")
        data = json.loads(payload)
        ok = check == hashlib.sha256((_TOKEN_CHECK + payload).encode()).hexdigest()[:12]
    except (ValueError, UnicodeDecodeError):
        ok, data = False, None
    if not ok or not isinstance(data, dict) or data.get("op") != op.name or not isinstance(data.get("after"), list):
        raise BadRequest(f"invalid nextToken for {op.name}: pass the nextToken of the previous {op.name} answer "
                         "unchanged")
    return data["after"]
