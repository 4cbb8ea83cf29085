"""How fast the decision log reaches a SIEM over syslog (``PDP_DECISION_LOG_SYSLOG``).

A real rsyslogd (Debian's package) listens on a free port and writes every message to a file;
``N`` decision entries are written to a segment by ``WalLog``; then ``SyslogForwarder`` sends
the segment as the shipper does (chunks of 4 MiB, RFC 5424, octet counting) and the clock runs
until rsyslogd has written the last message: entries per second, end to end.

    python -m bench.syslog --entries 200000
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from pdp.records.decision_log import WalLog
from pdp.records.decision_log.entry import Entry
from pdp.records.decision_log.syslog import SyslogForwarder

CONF = """
global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="msg" type="string" string="%msg%\\n")
*.* action(type="omfile" file="{out}" template="msg")
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def measure(entries: int) -> dict[str, float]:
    """Write ``entries`` decisions, deliver them to a real rsyslogd; the rates."""
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    with tempfile.TemporaryDirectory(prefix="pdp-bench-syslog-") as tmp:
        work, port = Path(tmp), _port()
        out = work / "received.log"
        (work / "rsyslog.conf").write_text(CONF.format(work=work, port=port, out=out))
        receiver = subprocess.Popen(
            [rsyslogd, "-n", "-f", str(work / "rsyslog.conf"), "-i", str(work / "pid")]
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            wal = WalLog(work / "log", "buffered", segment_bytes=1 << 40)
            entry: dict[str, Any] = {
                "kind": "check",
                "organisation": "mairie-montreuil",
                "user": "bruno.petit",
                "service": "cdap",
                "role": "T18",
                "caf": None,
                "allowed": True,
                "reason": "ALLOWED",
                "grants": [["CCAS-INSTRUCTION", "cdap", "T18", "group"]],
                "revision": 42,
            }
            for n in range(entries):
                wal.record(cast(Entry, {"decision_id": f"{n:032x}", "ts": time.time(), **entry}))
            (segment,) = wal.segments()
            size = segment.size
            forwarder = SyslogForwarder(f"tcp://127.0.0.1:{port}")
            started = time.perf_counter()
            offset = 0
            while offset < size:
                offset, _ = forwarder.forward_range(segment.path, offset, size, 4 << 20)
            sent_s = time.perf_counter() - started
            while _lines(out) < entries:
                time.sleep(0.05)
            received_s = time.perf_counter() - started
            forwarder.close()
            wal.close()
        finally:
            receiver.send_signal(signal.SIGTERM)
            receiver.wait(10)
    return {
        "entries": entries,
        "bytes": size,
        "sent_s": sent_s,
        "received_s": received_s,
        "sent_per_s": entries / sent_s,
        "received_per_s": entries / received_s,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.syslog", description=__doc__)
    parser.add_argument("--entries", type=int, default=200_000)
    args = parser.parse_args(argv)
    f = measure(args.entries)
    print(
        f"{f['entries']:,} entries ({f['bytes'] / 1e6:.1f} MB): sent in {f['sent_s']:.2f} s"
        f" ({f['sent_per_s']:,.0f}/s), all written by rsyslogd after {f['received_s']:.2f} s"
        f" ({f['received_per_s']:,.0f} entries/s end to end)"
    )


if __name__ == "__main__":
    main()
