"""The instance's shipper: one process that ships every worker's segments, so that the workers
only append to theirs (``pdp serve``), and the same loop run by ``pdp logs ship --follow``.

``ShipperLock`` (``shipper.lock`` in the log's directory, holding the holder's pid) makes it
one per directory: a second instance's shipper waits for it, and ``pdp logs ship`` run beside a
server leaves the workers' segments to it. ``ShipperProcess`` is the server's side: the master
forks the process, forks it again if it dies, and at shutdown, once the workers are gone, tells
it to ship what remains and waits for it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import signal
import time
from collections.abc import Callable
from pathlib import Path

from pdp.observability import metrics
from pdp.records.decision_log.shipper import Shipper

log = logging.getLogger("pdp.decisions")

LOCK = "shipper.lock"  # in the decision log's directory


class ShipperLock:
    """The directory's ``shipper.lock``: whoever holds it (``flock``) ships the workers'
    segments of ``pdp serve``; the file holds that process's pid."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / LOCK
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False if another process holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        """Let go of the lock (no-op if not held)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def holder(self) -> int | None:
        """The pid of the process holding the lock, or None if nobody holds it."""
        if self._fd is not None:
            return os.getpid()
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                text = os.pread(fd, 32, 0).decode(errors="replace").strip()
                return int(text) if text.isdigit() else 0  # held, pid not written yet
            return None
        finally:
            os.close(fd)


def follow(shipper: Shipper, stopping: Callable[[float], bool]) -> None:
    """Be the instance's shipper until ``stopping(timeout)`` (which waits up to ``timeout``
    seconds) says to stop: wait for ``shipper.lock``, ship every ``shipper.interval`` seconds
    (the first round at once: what a stopped server left), then a last round."""
    lock = ShipperLock(shipper.directory)
    if not lock.acquire():
        log.info(
            "decision log: another shipper (pid %s) holds %s; waiting", lock.holder(), lock.path
        )
        while not lock.acquire():
            if stopping(shipper.interval):
                return
    shipper.served = True
    try:
        shipper.shipped_through = time.time()
        while True:
            shipper.round()
            shipper.checkpoint()  # the workers leave it to this process (leave_checkpoints)
            if stopping(shipper.interval):
                break
        shipper.last_round()
        shipper.checkpoint()
        shipper.report_backlog()
    finally:
        lock.release()


class ShipperProcess:
    """The master's side of the shipper process of ``pdp serve``."""

    RESPAWN_PAUSE = 1.0  # seconds at least between two starts (a process that dies at once)

    def __init__(self, shipper: Shipper, in_child: Callable[[], None]) -> None:
        self.shipper = shipper
        self.in_child = in_child  # run first in the new process (close the master's sockets)
        self.pid = 0
        self._stop_fd: int | None = None  # the master writes a byte to it: stop
        self._started = 0.0

    def spawn(self) -> None:
        """Fork the shipper process."""
        read_end, write_end = os.pipe()
        master = os.getpid()
        pid = os.fork()
        if pid == 0:  # the shipper process: it never returns
            status = 0
            try:
                os.close(write_end)
                self._run(read_end, master)
            except BaseException:
                log.exception("decision log shipper process failed")
                status = 1
            os._exit(status)
        os.close(read_end)
        self.pid, self._stop_fd, self._started = pid, write_end, time.monotonic()
        log.info("decision log shipper process started (pid %s)", pid)

    def _run(self, stop_fd: int, master: int) -> None:
        # The master's handlers do not belong here, and its stop signals (a terminal's ^C, a
        # service manager's SIGTERM to the whole group) are not for this process: it stops
        # when the master says so, after the workers, to ship what they wrote last.
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
            signal.signal(number, signal.SIG_IGN)
        for number in (signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
            signal.signal(number, signal.SIG_DFL)
        for number in (signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(number, signal.SIG_DFL)
        self.in_child()
        metrics.not_a_worker()  # the policy's revision and freshness are the workers'
        self.shipper.db.dispose(close=False)  # connections must not cross a fork

        def stopping(timeout: float) -> bool:
            readable, _, _ = select.select([stop_fd], [], [], timeout)
            return bool(readable) or os.getppid() != master  # told to, or the master is gone

        follow(self.shipper, stopping)

    def close_in_worker(self) -> None:
        """In a worker forked after the shipper: let go of the master's end of the pipe."""
        if self._stop_fd is not None:
            os.close(self._stop_fd)
            self._stop_fd = None

    def reap(self) -> None:
        """In the master, on SIGCHLD: if the shipper process has exited, say how and forget
        it (``keep_alive`` starts another)."""
        if not self.pid:
            return
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by gunicorn's waitpid(-1): how it ended is lost
            pid, status = self.pid, -1
        if not pid:
            return
        if status == -1:
            how = "exited"
        elif os.WIFSIGNALED(status):
            how = f"killed by signal {os.WTERMSIG(status)}"
        else:
            how = f"exited with status {os.waitstatus_to_exitcode(status)}"
        log.error("decision log shipper process (pid %s) %s; starting another", pid, how)
        self._forget()

    def keep_alive(self) -> None:
        """In the master's loop: start the shipper process again if it is not running."""
        if not self.pid and time.monotonic() - self._started >= self.RESPAWN_PAUSE:
            self.spawn()

    def stop(self, timeout: float) -> None:
        """Tell the shipper process to ship what remains and stop (call once the workers are
        gone); wait for it up to ``timeout`` seconds, then kill it (its files wait on disk)."""
        if not self.pid or self._stop_fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._stop_fd, b"x")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid = self.pid
            if pid:
                log.info("decision log shipper process (pid %s) stopped", self.pid)
                self._forget()
                return
            time.sleep(0.05)
        log.error("decision log shipper process (pid %s) did not stop: killed", self.pid)
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        self._forget()

    def _forget(self) -> None:
        metrics.process_dead(self.pid)
        if self._stop_fd is not None:
            os.close(self._stop_fd)
        self.pid, self._stop_fd = 0, None
