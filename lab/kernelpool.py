"""Jupyter kernels started ahead of time, for the papermill suite (lab/e2e.py).

A fresh kernel takes about a second to start (a new Python, IPython, ZeroMQ) and a few tenths
of a second to stop. Run one notebook after another and those seconds add up; but nothing
stops the next notebook's kernel from starting while the current notebook runs, nor the last
one from stopping while the next runs. `Spare` does that for one line of notebooks:

    spare = Spare(cwd="notebooks", env={...})
    spare.prepare(2)                # the next two kernels start in the background, one after the other
    km, waited = spare.take()       # the first, started and answering (waited: seconds spent waiting)
    spare.prepare(2)                # ... and another starts now
    execute(notebook, km)           # papermill with ENGINE: the kernel is not restarted
    spare.release(km)               # stopped in the background
    spare.close()                   # stops the spare and waits for every stop

Each kernel is still a fresh process per notebook, started with the environment and working
directory given here; only the waiting is taken off the notebook's time. A kernel is also
"warmed" before it is handed out: `warm` (by default importing the lesson helpers) runs in it
silently, without history or an execution count, so what the notebook's first cell imports is
already loaded. A warm-up that fails is ignored: the notebook's own import fails again, in its
own cell, and is reported there. A kernel that fails to start is reported by `take()` raising
what went wrong.

Kernels talk ZeroMQ over Unix sockets (`transport="ipc"`) in a folder of their own that only
the user can enter, not over loopback TCP: with several labs and Python versions starting kernels
at once, TCP ports picked free by one kernel were taken by another before it bound them ("Address
already in use", the kernel dies before answering), and a loopback port is a door any local user
can knock on, where the folder is the owner's alone.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

KERNEL = "python3"
WARM = "import lab.notebook"
ENGINE = "appmesh-prestarted"
HISTORY = ["--HistoryManager.hist_file=:memory:"]   # as nbclient starts its kernels: no history file


def start(kernel_name: str = KERNEL, cwd: str | None = None, env: dict | None = None, warm: str = WARM,
          timeout: float = 60):
    """Start a kernel, wait until it answers, run `warm` in it; the KernelManager."""
    from jupyter_client.manager import KernelManager
    folder = tempfile.mkdtemp(prefix="appmesh-lab-kernel-")   # 0700: the sockets and the connection file
    # nbclient drives the kernel through asyncio: its client must be the asynchronous one
    km = KernelManager(kernel_name=kernel_name, client_class="jupyter_client.asynchronous.AsyncKernelClient",
                       transport="ipc", ip=os.path.join(folder, "k"),
                       connection_file=os.path.join(folder, "connection.json"))
    try:
        # env=None would reach the provisioner as None, which it cannot read: leave it out then
        km.start_kernel(cwd=cwd, extra_arguments=list(HISTORY), **({} if env is None else {"env": env}))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        kc = km.blocking_client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=timeout)
            if warm:
                msg_id = kc.execute(warm, silent=True, store_history=False, allow_stdin=False)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:   # its reply; an error in it is the notebook's to report
                    reply = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
                    if reply["parent_header"].get("msg_id") == msg_id:
                        break
        finally:
            kc.stop_channels()
    except BaseException:
        stop(km)
        raise
    return km


def stop(km) -> None:
    """Shut a kernel down (a shutdown request, then a kill if it does not go)."""
    try:
        if km.has_kernel:
            km.shutdown_kernel(now=False)
    except Exception:  # a kernel that died already: what is left is cleaned up below
        pass
    finally:
        try:
            km.cleanup_resources()
        except Exception:  # its connection file is gone already
            pass
        folder = os.path.dirname(km.connection_file or "")
        if os.path.basename(folder).startswith("appmesh-lab-kernel-"):
            shutil.rmtree(folder, ignore_errors=True)


class Spare:
    """Kernels starting ahead of the notebooks that will use them, for one line of notebooks."""

    def __init__(self, kernel_name: str = KERNEL, cwd: str | None = None, env: dict | None = None,
                 warm: str = WARM, timeout: float = 60):
        self.kernel_name, self.cwd, self.env, self.warm, self.timeout = kernel_name, cwd, env, warm, timeout
        self._starter = ThreadPoolExecutor(1, thread_name_prefix="kernel-start")   # one at a time, in order
        self._stopper = ThreadPoolExecutor(2, thread_name_prefix="kernel-stop")
        self._next: deque[Future] = deque()
        self._stops: list[Future] = []
        self._lock = threading.Lock()

    def prepare(self, ahead: int = 1) -> None:
        """Have `ahead` kernels started or starting in the background (the next notebooks')."""
        with self._lock:
            while len(self._next) < ahead:
                self._next.append(self._starter.submit(start, self.kernel_name, self.cwd, self.env, self.warm,
                                                       self.timeout))

    def take(self):
        """(KernelManager, seconds waited for it): the first prepared kernel, started now if none was."""
        self.prepare(1)
        with self._lock:
            fut = self._next.popleft()
        t0 = time.perf_counter()
        km = fut.result()
        return km, time.perf_counter() - t0

    def release(self, km) -> None:
        """Stop a kernel in the background."""
        if km is not None:
            self._stops.append(self._stopper.submit(stop, km))

    def close(self) -> None:
        """Stop the kernels prepared and not taken, and wait until every kernel has stopped."""
        with self._lock:
            left, self._next = list(self._next), deque()
        for fut in left:
            try:
                self.release(fut.result())
            except Exception:  # it failed to start: nothing to stop
                pass
        for f in self._stops:
            f.result()
        self._starter.shutdown(wait=True)
        self._stopper.shutdown(wait=True)


def register_engine() -> str:
    """Register papermill's engine for a kernel started here: it executes the notebook in the
    kernel it is given (km=...) and closes its own client's channels afterwards, leaving the
    kernel to its owner (Spare.release). Idempotent; returns the engine's name."""
    from papermill.engines import NBClientEngine, papermill_engines

    class Prestarted(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            from papermill.clientwrap import PapermillNotebookClient
            from papermill.utils import merge_kwargs, remove_args
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            client = PapermillNotebookClient(nb_man, **merge_kwargs(
                kwargs, timeout=execution_timeout, startup_timeout=start_timeout, kernel_name=kernel_name,
                log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file))
            try:
                return client.execute()
            finally:
                if getattr(client, "kc", None) is not None:
                    client.kc.stop_channels()

    if ENGINE not in papermill_engines._engines:
        papermill_engines.register(ENGINE, Prestarted)
    return ENGINE
