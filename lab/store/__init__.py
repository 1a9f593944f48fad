"""Where resources and their status live. SQLite for the local lab (this package); the
in-cluster controller uses the Kubernetes API behind the same operations."""
from .sqlite import Record, Store, StoreError

__all__ = ["Record", "Store", "StoreError"]
