"""A stop signal reaching a gunicorn worker while it boots is not lost (pdp.web.server).

Between the fork and gunicorn's own worker handlers, a SIGTERM ran the master's handler copied
into the child and was forgotten: the worker served on until the master killed it after
``graceful_timeout`` (seen as e2e servers that did not stop cleanly). Run in a subprocess, so
that the handlers installed do not replace pytest's."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, queue, signal
    from pdp.web.server import _stop_on_early_signal

    class Master:
        def __init__(self, *pending):
            self.SIG_QUEUE = queue.SimpleQueue()
            for s in pending:
                self.SIG_QUEUE.put_nowait(s)

    class Worker:
        alive = True

    # 1. A SIGTERM queued by the master's copied handler before the hook ran.
    w = Worker()
    _stop_on_early_signal(Master(signal.SIGCHLD, signal.SIGTERM), w)
    print("queued", w.alive)

    # 2. Other signals queued: the worker stays up.
    w = Worker()
    _stop_on_early_signal(Master(signal.SIGCHLD, signal.SIGHUP), w)
    print("other", w.alive)

    # 3. A SIGTERM after the hook, before gunicorn's handlers: recorded, not fatal, not lost.
    w = Worker()
    _stop_on_early_signal(Master(), w)
    os.kill(os.getpid(), signal.SIGTERM)
    print("after", w.alive)
    """
)


def test_a_sigterm_during_a_workers_boot_stops_it_once_booted() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["queued False", "other True", "after False"]
