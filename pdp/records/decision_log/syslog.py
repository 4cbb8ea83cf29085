"""Delivering the decision log to a SIEM over syslog, beside the database.

``PDP_DECISION_LOG_SYSLOG=tcp://host:port`` (or ``tls://host:port``, the certificate checked
against ``PDP_DECISION_LOG_SYSLOG_CA`` or the system's authorities) makes the shipper deliver
every entry of the segments, in order, as one RFC 5424 message, framed by octet counting
(RFC 6587: ``LEN SP MSG``), over one kept-alive connection:

    <134>1 2026-12-02T09:15:02.120512Z host pdp 4242 decision - {"decision_id":"…",…}

(facility local0, severity informational; the entry's own time; MSG is the entry's JSON line,
exactly as the database receives it, its decision id included so that the SIEM can drop a
duplicate).

The same rule as the database's: an entry leaves its segment only once delivered. Each segment
has a second offset beside the database's (``<segment>.forwarded``), and a segment is deleted
once both offsets reach its end. Syslog over TCP has no acknowledgement, and a write the kernel
accepted is not a message the receiver kept (a receiver stopping drops what it had not read):
so what a round sends is *confirmed*, and its offset moved, only at the next round (at least
``PDP_DECISION_LOG_SHIP_INTERVAL`` later), if the connection that carried it is still open; if
it was closed or reset meanwhile, the same entries are sent again on a new connection. Delivery
is therefore at least once (a duplicate carries the same decision id), and nothing is lost when
the receiver stops, restarts or refuses connections for a while: the entries wait on disk
(``pdp_decision_log_forward_pending_bytes``, ``pdp_decision_log_forward_errors_total``) and go
as soon as it is back, without holding up the database's copy (nor the database down holding
up the SIEM's). What remains outside this guarantee is a machine lost with both copies.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import select
import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from pdp.core.errors import ConfigurationError

PRI = 16 * 8 + 6  # local0.info
APP = "pdp"
MSGID = "decision"


def _timestamp(line: bytes) -> str:
    """The entry's time (``ts``: seconds since the epoch) as RFC 5424 wants it (UTC,
    microseconds), or "-" (NILVALUE) if unreadable."""
    try:
        moment = dt.datetime.fromtimestamp(float(orjson.loads(line)["ts"]), dt.UTC)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError, OSError):
        return "-"
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class SyslogForwarder:
    """One kept-alive connection to the receiver; ``send`` frames and writes whole lines."""

    def __init__(self, url: str, ca_file: str = "", *, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("tcp", "tls") or not parts.hostname or not parts.port:
            raise ConfigurationError(
                f"PDP_DECISION_LOG_SYSLOG must be tcp://host:port or tls://host:port, not {url!r}"
            )
        self.url = url
        self.host, self.port = parts.hostname, parts.port
        self.timeout = timeout
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "tls":
            self._tls = ssl.create_default_context(cafile=ca_file or None)
        self._sock: socket.socket | None = None
        self._sock_pid = 0
        self._sent: dict[Path, int] = {}  # offsets sent on the open connection, unconfirmed
        self._header_tail = f" {socket.gethostname() or '-'} {APP} {os.getpid()} {MSGID} - "
        self._pid = os.getpid()

    def frames(self, lines: list[bytes]) -> bytes:
        """The octet-counted RFC 5424 messages of ``lines`` (one entry each)."""
        if self._pid != os.getpid():  # forked: the PROCID is this process's
            self._pid = os.getpid()
            self._header_tail = f" {socket.gethostname() or '-'} {APP} {self._pid} {MSGID} - "
        out = []
        for line in lines:
            message = f"<{PRI}>1 {_timestamp(line)}{self._header_tail}".encode() + line
            out.append(b"%d " % len(message) + message)
        return b"".join(out)

    def send(self, lines: list[bytes]) -> None:
        """Write every line's message; raise OSError if the connection fails (it is dropped
        and opened again on the next call)."""
        if not lines:
            return
        data = self.frames(lines)
        sock = self._connect()
        try:
            sock.sendall(data)
        except OSError:
            self.close()
            raise

    def settle(self) -> dict[Path, int]:
        """Confirm what was sent since the last call if its connection is still open: the
        offsets reached, per segment. If it was closed or reset meanwhile, drop it and confirm
        nothing: those entries are sent again from their confirmed offsets."""
        sent, self._sent = self._sent, {}
        if not sent:
            return {}
        if self._alive():
            return sent
        self.close()
        return {}

    def sent_to(self, path: Path) -> int | None:
        """How far ``path`` was sent on the open connection (not confirmed yet)."""
        return self._sent.get(path)

    def _alive(self) -> bool:
        """Whether the connection is open: the receiver never writes, so a readable socket
        means end of file or an error (a TLS record such as a session ticket reads as none)."""
        sock = self._sock
        if sock is None or self._sock_pid != os.getpid():
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return True
            sock.setblocking(False)
            try:
                return sock.recv(1) != b""
            finally:
                sock.settimeout(self.timeout)
        except (BlockingIOError, ssl.SSLWantReadError):
            return True
        except OSError:
            return False

    def _connect(self) -> socket.socket:
        if self._sock is not None and self._sock_pid == os.getpid():
            return self._sock
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        self._sock, self._sock_pid = sock, os.getpid()
        return sock

    def close(self) -> None:
        """Drop the connection (the next ``send`` opens another)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._sent = {}

    def forward_range(self, path: Path, start: int, end: int, chunk_bytes: int) -> tuple[int, int]:
        """Send the complete lines of ``path`` in [start, end); return the offset reached
        (``start`` if only a torn line is left) and the entries sent; raise OSError if the
        receiver fails."""
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(min(end - start, chunk_bytes))
        cut = data.rfind(b"\n")
        if cut < 0:
            # A line longer than a chunk is never an entry: skipped, as the database sets it
            # aside (an empty range is also ``start``).
            return (start + len(data) if len(data) == chunk_bytes else start), 0
        lines = data[:cut].split(b"\n")
        self.send(lines)
        self._sent[path] = start + cut + 1
        return start + cut + 1, len(lines)
