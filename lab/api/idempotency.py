"""clientToken records: the first answer to a Create/Update, kept so a retry gets it again.

A record lives in the store's kv table under `api-token:<clientToken>`:
{operation, digest of the request, path of the resource, response, at}. It expires TTL_S after
it was written: a token reused later starts a new request. App Mesh does not document how long
it remembers a token; the lab keeps one for 24 hours, the period AWS documents for EC2's client
tokens ("valid for at least 24 hours"), far longer than any SDK retries a request. boto3 sends a
fresh token with every Create/Update, so without expiry every API write would stay in the store
for good. Expired records are dropped when read and, at most once per SWEEP_S, all at once.

The clock is a parameter, or `now` (tests move it forward instead of waiting a day).
"""
from __future__ import annotations

import time

PREFIX = "api-token:"
TTL_S = 24 * 3600
SWEEP_S = 3600


def now() -> float:
    """The clock of token records (a test replaces it)."""
    return time.time()


class Tokens:
    """The clientToken records of one store."""

    _last_sweep: dict = {}  # id of the store → clock value of its last sweep

    def __init__(self, store, clock=None):
        self.store, self.clock = store, clock or (lambda: now())

    def get(self, token: str) -> dict | None:
        """The live record of a token, or None (never used, or expired: then it is dropped)."""
        seen = self.store.kv_get(PREFIX + token)
        if not seen:
            return None
        if self.expired(seen):
            self.store.kv_delete(PREFIX + token)
            return None
        return seen

    def put(self, token: str, record: dict) -> None:
        self.sweep()
        self.store.kv_set(PREFIX + token, {**record, "at": self.clock()})

    def drop(self, token: str) -> None:
        self.store.kv_delete(PREFIX + token)

    def expired(self, record: dict) -> bool:
        at = record.get("at")
        return not isinstance(at, (int, float)) or self.clock() - at > TTL_S  # records without a time predate expiry

    def sweep(self, force: bool = False) -> int:
        """Drop every expired record (at most once per SWEEP_S unless forced); returns how many."""
        t = self.clock()
        last = Tokens._last_sweep.get(id(self.store))
        if not force and last is not None and 0 <= t - last < SWEEP_S:
            return 0
        Tokens._last_sweep[id(self.store)] = t
        gone = [k for k, v in self.store.kv_items(PREFIX).items() if not isinstance(v, dict) or self.expired(v)]
        for k in gone:
            self.store.kv_delete(k)
        return len(gone)
