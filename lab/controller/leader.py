"""Leader election with a coordination.k8s.io/v1 Lease, the way client-go does it.

Every replica watches and serves xDS and the webhook; only the leader writes to the API
(statuses, finalizers, events), so two replicas never fight over an object.

A replica holds the lease while it renews `spec.renewTime` at least every `renew_s`; another
replica takes the lease over when the record it observed has not changed for
`lease_duration_s` of its *own* clock (so clocks of different nodes need not agree). An update
that loses a race gets 409 and changes nothing.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from .kube import Conflict, Kube, KubeError

log = logging.getLogger("appmesh-lab.controller")


def _micro(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, kube: Kube, namespace: str, name: str, identity: str, lease_duration_s: int = 15,
                 renew_s: float = 10.0, retry_s: float = 2.0, clock=time.monotonic, wall=time.time,
                 on_change=None):
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.lease_duration_s, self.renew_s, self.retry_s = lease_duration_s, renew_s, retry_s
        self.clock, self.wall = clock, wall
        self.on_change = on_change or (lambda leading: None)
        self._leading = False
        self._observed: tuple | None = None  # (holder, renewTime, resourceVersion) last seen
        self._observed_at = 0.0
        self._last_renew = 0.0

    @property
    def leading(self) -> bool:
        # a leader that could not renew in time must stop acting before another takes over
        return self._leading and self.clock() - self._last_renew < self.renew_s + self.retry_s

    def _set(self, leading: bool) -> None:
        if leading != self._leading:
            log.info("%s %s the lease %s/%s", self.identity, "acquired" if leading else "lost",
                     self.namespace, self.name)
            self._leading = leading
            self.on_change(leading)

    def _spec(self, transitions: int, acquire_time: str | None) -> dict:
        now = _micro(self.wall())
        return {"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_duration_s,
                "acquireTime": acquire_time or now, "renewTime": now, "leaseTransitions": transitions}

    def try_acquire_or_renew(self) -> bool:
        """One round; True when this replica holds the lease afterwards."""
        try:
            lease = self.kube.get_lease(self.namespace, self.name)
            if lease is None:
                self.kube.create_lease(self.namespace, {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(0, None)})
                return self._won()
            spec = lease.get("spec") or {}
            meta = lease.get("metadata") or {}
            record = (spec.get("holderIdentity"), spec.get("renewTime"), meta.get("resourceVersion"))
            if record != self._observed:
                self._observed, self._observed_at = record, self.clock()
            holder = spec.get("holderIdentity")
            duration = spec.get("leaseDurationSeconds") or self.lease_duration_s
            expired = self.clock() - self._observed_at >= duration
            if holder and holder != self.identity and not expired:
                self._set(False)
                return False
            transitions = int(spec.get("leaseTransitions") or 0)
            mine = holder == self.identity
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace,
                                 "resourceVersion": meta.get("resourceVersion")},
                    "spec": self._spec(transitions if mine else transitions + 1,
                                       spec.get("acquireTime") if mine else None)}
            self.kube.replace_lease(self.namespace, self.name, body)
            return self._won()
        except Conflict:
            self._set(False)
            return False
        except KubeError as exc:
            log.warning("leader election: %s", exc)
            if not self.leading:
                self._set(False)
            return self.leading

    def _won(self) -> bool:
        self._last_renew = self.clock()
        self._set(True)
        return True

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.try_acquire_or_renew()
            stop.wait(self.retry_s if not self._leading else min(self.retry_s, self.renew_s / 2))
        if self._leading:
            self.release()

    def release(self) -> None:
        """Give the lease up on shutdown, so another replica takes over at once."""
        try:
            lease = self.kube.get_lease(self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["leaseDurationSeconds"] = 1
                self.kube.replace_lease(self.namespace, self.name, lease)
        except KubeError as exc:
            log.info("could not release the lease: %s", exc)
        self._set(False)
