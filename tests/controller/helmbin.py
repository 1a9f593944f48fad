"""The chart tests' helm finder lives in the kit (lesson 02 uses it too): lab/helmbin.py."""
from lab.helmbin import CACHE, PACKAGE, WHY, find_helm  # noqa: F401
