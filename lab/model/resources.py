"""Resources: validated documents, with the few accessors every layer needs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .loader import Document


@dataclass
class Resource:
    api_version: str
    kind: str
    name: str
    namespace: Optional[str]  # None for cluster-scoped kinds (Mesh, Namespace)
    labels: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)
    spec: dict = field(default_factory=dict)
    doc: Optional[Document] = None
    raw: dict = field(default_factory=dict)  # the whole document as written

    def __post_init__(self):
        # one key tuple per resource, made once: the lab's daemon keeps a resource's key in a dozen
        # indexes (validation, conditions, status, translation), one tuple each when made per call
        # (5,000 routes: 120,000 tuples, 7 MB). kind, namespace and name are not changed after.
        self._key = (self.kind, self.namespace or "", self.name)

    @property
    def key(self) -> tuple:
        return self._key

    @property
    def ref(self) -> str:
        """kind/namespace/name, as events and messages name a resource."""
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    @property
    def file(self) -> str:
        return self.doc.file if self.doc else "<lab>"

    def line_of(self, path: str) -> int:
        return self.doc.line_of(path) if self.doc else 0

    def aws_name(self) -> str:
        """App Mesh name, with the controller's defaults (APPMESH-FACTS §5)."""
        given = self.spec.get("awsName")
        if isinstance(given, str) and given:
            return given
        if self.kind == "Mesh":
            return self.name
        if self.kind == "VirtualService":
            return f"{self.name}.{self.namespace}"
        return f"{self.name}_{self.namespace}"


def selector_matches(selector, labels: dict, absent_matches: bool = False) -> bool:
    """Kubernetes label-selector semantics. An absent (None) selector matches nothing unless
    `absent_matches`; an empty one matches everything."""
    if selector is None:
        return absent_matches
    if not isinstance(selector, dict):
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
