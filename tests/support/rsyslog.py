"""A real syslog receiver for the tests: Debian's rsyslogd, started in the foreground with its
own configuration (imtcp on a free port, octet-counted framing; every message written to a file
with the fields RFC 5424 gives it), stopped and started again on the same port at will.

Without rsyslogd the tests that need it are skipped, unless ``PDP_TEST_SYSLOG=1`` (CI), which
makes its absence a failure."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"

_CONF = """
global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="fields" type="string"
         string="%pri%|%app-name%|%procid%|%msgid%|%timereported:::date-rfc3339%|%msg%\\n")
*.* action(type="omfile" file="{out}" template="fields")
"""


def need_rsyslog() -> None:
    """Skip without rsyslogd, unless CI asks for it (PDP_TEST_SYSLOG=1)."""
    if Path(RSYSLOGD).exists():
        return
    if os.environ.get("PDP_TEST_SYSLOG") == "1":
        pytest.fail("PDP_TEST_SYSLOG=1 but rsyslogd is missing (apt-get install rsyslog)")
    pytest.skip("rsyslogd is not installed (Debian's package rsyslog)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Receiver:
    """One rsyslogd in ``work``, listening on 127.0.0.1:``port``."""

    work: Path
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def out(self) -> Path:
        return self.work / "received.log"

    def start(self) -> None:
        conf = self.work / "rsyslog.conf"
        conf.write_text(_CONF.format(work=self.work, port=self.port, out=self.out))
        self.process = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(conf), "-i", str(self.work / "rsyslogd.pid")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.work / "rsyslogd.err", "ab"),  # noqa: SIM115 (the child owns it)
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"rsyslogd did not listen on {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
            self.process = None

    def messages(self) -> list[tuple[str, ...]]:
        """What rsyslogd wrote: (pri, app, procid, msgid, time, msg) per message."""
        if not self.out.exists():
            return []
        return [
            tuple(line.split("|", 5))
            for line in self.out.read_text(encoding="utf-8").splitlines()
            if line
        ]
