"""A reader that goes away early (`appmesh-lab get … | head -1`) ends a verb as it ends git: quietly,
with SIGPIPE's status."""
from __future__ import annotations

import sys


def output_closed() -> bool:
    """True when the reader of stdout or stderr went away (`appmesh-lab get … | head -1`): the
    write end of a pipe whose read end is closed polls as an error."""
    import select
    poll = select.poll()
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            poll.register(stream.fileno(), select.POLLOUT)
        except (AttributeError, OSError, ValueError):
            continue
    return any(ev & select.POLLERR for _, ev in poll.poll(0))


def end_on_closed_pipe() -> int:
    """End quietly as `git log | head -1` does: no traceback, and the status of a process
    ended by SIGPIPE (a shell shows 141). Output still buffered is dropped: nobody reads it."""
    import os
    import signal
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            os.dup2(devnull, stream.fileno())
        except (AttributeError, OSError, ValueError):
            pass
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    return 128 + signal.SIGPIPE  # where SIGPIPE cannot end the process
