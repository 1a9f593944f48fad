"""The back-off of a proxy whose listener port another process holds (lab/runtime/port_conflicts.py),
on a clock the test moves: pushed again once the port looks free, never faster than the back-off,
and at least every FORCE_AFTER seconds however the check answers."""
import socket

from lab.runtime.isolation import bind_conflict
from lab.runtime.port_conflicts import BACKOFF_MAX, FORCE_AFTER, PortConflicts, looks_free

NID = "mesh/gatewayapi/gateway/appmesh-demo_gw"
C = bind_conflict("lds_x: cannot bind '127.0.0.1:40080': Address already in use")


def _conflicts(free):
    now = [0.0]
    pc = PortConflicts(clock=lambda: now[0], free=lambda address: free[0])
    return pc, now


def _pushes_over(pc, now, seconds, step=0.125):
    """Advance the clock; every push is NACKed at once (the port still held). The push times."""
    out, end = [], now[0] + seconds
    while now[0] < end:
        now[0] += step
        for nid in pc.due():
            out.append(now[0])
            pc.nacked(nid, C)
    return out


def test_while_the_port_is_held_the_proxy_is_pushed_only_every_thirty_seconds():
    free = [False]
    pc, now = _conflicts(free)
    assert pc.nacked(NID, C) is True and pc.nacked(NID, C) is False  # news once
    assert len(_pushes_over(pc, now, 95)) == 3


def test_a_port_that_looks_free_is_pushed_with_a_back_off_that_is_bounded():
    free = [True]
    pc, now = _conflicts(free)
    pc.nacked(NID, C)
    times = _pushes_over(pc, now, 120)
    gaps = [b - a for a, b in zip([0.0] + times, times)]
    assert gaps[:4] == [1.0, 2.0, 4.0, 8.0] and max(gaps) <= BACKOFF_MAX + 0.2 and min(gaps) >= 1.0, gaps
    assert pc.acked(NID) is not None and pc.view(NID) is None and pc.due() == []


def test_the_view_tells_the_port_the_proxy_and_what_to_do():
    pc, _ = _conflicts([False])
    pc.nacked(NID, C)
    msg = pc.view(NID)["message"]
    assert "127.0.0.1:40080" in msg and NID in msg and "ss -ltnp 'sport = :40080'" in msg and "no resource" in msg


def test_looks_free_sees_a_listening_socket():
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        address = f"127.0.0.1:{s.getsockname()[1]}"
        assert looks_free(address) is False
    assert looks_free(address) is True
    assert FORCE_AFTER > BACKOFF_MAX


def test_up_waits_for_a_push_not_sent_yet_and_not_for_a_port_another_process_holds():
    from lab.runtime.client import restore_pending
    pod = {"namespace": "ns", "name": "gw-1", "status": "Running", "node_id": NID, "containers": []}
    proxy = {"node_id": NID, "snapshot_version": "1-1", "connected": True, "push": {"version": "1-1", "acked": None},
             "types": {"lds": {"acked_version": None, "last_sent_version": None}}}
    # connected, nothing sent to it yet: not restored (all() of no sent type used to say it was)
    assert restore_pending({"pods": [pod], "proxies": [proxy]})[0] == [f"proxy {NID} has not ACKed version 1-1"]
    conflict = {"message": "the proxy ... cannot listen on 127.0.0.1:40080"}
    assert restore_pending({"pods": [pod], "proxies": [{**proxy, "port_conflict": conflict}]}) == (
        [], [conflict["message"]])
