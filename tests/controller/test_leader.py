"""Leader election with a Lease (lab.controller.leader)."""
from __future__ import annotations

from lab.controller.kube import KubeError
from lab.controller.leader import LeaderElector


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def pair(fake_kube):
    kube, clock = fake_kube(), Clock()
    a = LeaderElector(kube, "appmesh-system", "leader", "pod-a", clock=clock, wall=lambda: 1.8e9)
    b = LeaderElector(kube, "appmesh-system", "leader", "pod-b", clock=clock, wall=lambda: 1.8e9)
    return kube, clock, a, b


def test_the_first_replica_creates_the_lease_and_leads(fake_kube):
    kube, clock, a, b = pair(fake_kube)
    assert a.try_acquire_or_renew() and a.leading
    lease = kube.leases[("appmesh-system", "leader")]
    assert lease["spec"]["holderIdentity"] == "pod-a" and lease["spec"]["leaseDurationSeconds"] == 15
    assert lease["spec"]["renewTime"].endswith("Z")


def test_a_second_replica_does_not_lead_while_the_lease_is_renewed(fake_kube):
    kube, clock, a, b = pair(fake_kube)
    a.try_acquire_or_renew()
    for _ in range(10):
        clock.t += 5
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    assert kube.leases[("appmesh-system", "leader")]["spec"]["holderIdentity"] == "pod-a"


def test_a_lease_not_renewed_for_its_duration_is_taken_over(fake_kube):
    kube, clock, a, b = pair(fake_kube)
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b observes the record now
    clock.t += 16
    assert b.try_acquire_or_renew() and b.leading
    spec = kube.leases[("appmesh-system", "leader")]["spec"]
    assert spec["holderIdentity"] == "pod-b" and spec["leaseTransitions"] == 1
    # a stopped acting as leader on its own, since it could not renew in time
    assert not a.leading
    assert not a.try_acquire_or_renew()


def test_losing_a_race_changes_nothing(fake_kube):
    import copy
    kube, clock, a, b = pair(fake_kube)
    c = LeaderElector(kube, "appmesh-system", "leader", "pod-c", clock=clock, wall=lambda: 1.8e9)
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew() and not c.try_acquire_or_renew()
    clock.t += 16  # a stopped renewing
    stale = kube.get_lease("appmesh-system", "leader")
    assert b.try_acquire_or_renew()
    kube.get_lease = lambda ns, name: copy.deepcopy(stale)  # c read the lease before b wrote it
    assert not c.try_acquire_or_renew() and not c.leading
    assert kube.leases[("appmesh-system", "leader")]["spec"]["holderIdentity"] == "pod-b"


def test_an_api_error_keeps_a_fresh_leader_and_demotes_a_stale_one(fake_kube):
    kube, clock, a, b = pair(fake_kube)
    a.try_acquire_or_renew()
    kube.fail_next["replace_lease"] = KubeError("update lease: 500")
    clock.t += 2
    assert a.try_acquire_or_renew()  # renewed 2s ago: still leading
    clock.t += 20
    kube.fail_next["replace_lease"] = KubeError("update lease: 500")
    assert not a.try_acquire_or_renew()


def test_release_hands_the_lease_over_at_once(fake_kube):
    kube, clock, a, b = pair(fake_kube)
    changes = []
    a.on_change = changes.append
    a.try_acquire_or_renew()
    a.release()
    assert changes == [True, False]
    assert b.try_acquire_or_renew()
