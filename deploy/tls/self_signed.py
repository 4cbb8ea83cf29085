"""A self-signed TLS certificate for the demo's nginx (deploy/compose.yaml's ``tls`` service).

Run at every ``docker compose up`` with the pdp image's Python (``cryptography`` comes with
PyJWT[crypto]): writes ``tls.crt`` and ``tls.key`` into the directory given (a volume nginx
mounts read-only), unless a certificate valid for at least 7 more days is there already. Names
``localhost`` and 127.0.0.1, plus the names of ``TLS_NAMES`` (comma-separated). For the demo
only: in production, mount a certificate of the Caf's PKI in that volume instead (this script
then leaves it alone while it is valid).

    python self_signed.py /certs
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DAYS = 90
RENEW_BEFORE = dt.timedelta(days=7)


def still_valid(cert_path: Path, now: dt.datetime) -> bool:
    """Whether ``cert_path`` holds a certificate valid for at least RENEW_BEFORE."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc - now > RENEW_BEFORE


def make(directory: Path, names: list[str], now: dt.datetime) -> None:
    """Write a new key (P-256) and a certificate for ``names`` into ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path = directory / "tls.key"
    # Readable by nginx's workers (another user than this container's): the volume is private.
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o644)
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: self_signed.py DIRECTORY", file=sys.stderr)
        return 2
    directory = Path(argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    if still_valid(directory / "tls.crt", now):
        print(f"{directory / 'tls.crt'}: still valid, kept")
        return 0
    extra = [n.strip() for n in os.environ.get("TLS_NAMES", "").split(",") if n.strip()]
    make(directory, ["localhost", *extra], now)
    print(f"{directory / 'tls.crt'}: self-signed certificate made for {DAYS} days")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
