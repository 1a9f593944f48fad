"""nb.access_log / nb.flags read every pod of an owner: the examples all name their gateway's
Deployment `gateway` (a lab that ran several examples has one per namespace, and a pod being
replaced is listed beside its successor), and lesson 11's check read only the first one listed:
'0 access-log lines for /balance?s=a11 from gateway's Envoy' in a course run under load."""
from __future__ import annotations

from lab.notebook import accesslog
from lab.targets.base import TargetError

LINE = ('[2026-12-06T19:40:01.123Z] "GET {path} HTTP/1.1" {status} {flags} 0 19 3 - "-" "python-urllib3/2.0" '
        '"8d1c2f9e-0000-4000-8000-000000000000" "127.0.0.1:30080" "127.0.0.1:41234"')


class Lab:
    """A target with two `gateway` pods (another example's first) and one that went away."""

    def __init__(self):
        self.logs_of = {"gateway-aaa": LINE.format(path="/other", status=200, flags="-"),
                        "gateway-bbb": LINE.format(path="/balance?s=a11", status=503, flags="UF") + "\n"
                        + LINE.format(path="/balance?s=a11", status=503, flags="-")}

    def pods(self, namespace=None):
        return [{"name": "gateway-aaa", "owner": "gateway", "namespace": "ex-blue-green"},
                {"name": "gateway-bbb", "owner": "gateway", "namespace": "ex-mtls-mesh"},
                {"name": "accounts-ccc", "owner": "accounts", "namespace": "ex-mtls-mesh"},
                {"name": "gateway-gone", "owner": "gateway", "namespace": "ex-old"}]

    def logs(self, pod, container=None, tail=0):
        """As the targets do: a pod by its name, or the first pod listed of that owner."""
        name = next((p["name"] for p in self.pods() if pod in (p["name"], p["owner"])), None)
        if name not in self.logs_of:   # (gateway-gone went away once listed)
            raise TargetError(f"no pod {pod!r}")
        return self.logs_of[name]

    def say(self, *args):
        pass


def test_every_pod_of_the_owner_is_read():
    lines = accesslog.access_log(Lab(), "gateway", "/balance?s=a11")
    assert [(x["status"], x["flags"]) for x in lines] == [(503, "UF"), (503, "-")], lines
    assert accesslog.access_log(Lab(), "gateway-aaa", "/other")[0]["status"] == 200   # a pod by its name
