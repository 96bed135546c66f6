"""Field mode: serve the app to phones on the local network, over HTTPS, behind a password.

Browsers only give a page the camera on a secure origin (HTTPS or localhost), so a phone on
the cooperative's Wi-Fi needs HTTPS. `ensure_certificate` makes a self-signed certificate on
this machine (kept in `<workspace>/field/`, 0600 key), valid for the address it is served on;
the phone's browser warns once. `hash_password` / `check_password` keep only a salted PBKDF2
hash in the app's environment; the app (ui/access.py) asks for the password on every page.

`latih serve` (core/cli.py) uses `streamlit_command`: localhost only, no TLS, no password by
default; `--lan` adds all three. Nothing here sends anything anywhere: finding the LAN
address "connects" a UDP socket, which only asks the OS for a route.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import socket
import sys
import time
from pathlib import Path

from core.errors import LatihError
from core.workspace import subdir
from core.i18n import Msg

log = logging.getLogger(__name__)

PASSWORD_ENV = "LATIH_FIELD_PASSWORD_HASH"
URL_ENV = "LATIH_FIELD_URL"
ITERATIONS = 200_000
CERT_DAYS = 365
REPO = Path(__file__).resolve().parent.parent


class FieldError(LatihError):
    """Field mode cannot start (bad address, password too short)."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    if len(password) < 6:
        raise FieldError(Msg("err.field.short_password"))
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS)
    return f"pbkdf2-sha256${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, iterations, salt, digest = stored.split("$")
        got = hashlib.pbkdf2_hmac("sha256", (password or "").encode(), base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(got, base64.b64decode(digest))
    except (ValueError, TypeError) as exc:
        log.error("the field-mode password hash is malformed (%s): every password is refused", exc)
        return False


COOKIE = "latih_field"
COOKIE_HOURS = 12


def _cookie_key(stored: str) -> bytes:
    # Why derived from the stored hash: it holds a salt drawn afresh at each `latih serve --lan`,
    # so a restart or a new password ends every earlier cookie, and no other secret is kept.
    return hashlib.sha256(b"latih-field-cookie\0" + stored.encode()).digest()


def session_token(stored: str, now: float | None = None, hours: float = COOKIE_HOURS) -> str:
    """A signed token for the browser that gave the right password: its expiry time and an
    HMAC of it; it holds neither the password nor its hash."""
    expires = int((time.time() if now is None else now) + hours * 3600)
    signature = hmac.new(_cookie_key(stored), f"{COOKIE}|{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{signature}"


def check_token(token: str | None, stored: str, now: float | None = None) -> bool:
    """True when `token` was made by `session_token` for this hash and has not expired."""
    if not isinstance(token, str) or not token or not stored:
        return False
    expires, _, signature = token.partition(".")
    if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
        return False
    expected = hmac.new(_cookie_key(stored), f"{COOKIE}|{expires}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def new_password() -> str:
    """Easy to type on a phone: 3 groups of 4 lower-case letters and digits, e.g. k7mq-2xha-p9td."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3))


def lan_address() -> str:
    """This machine's address on the local network (no packet is sent); 127.0.0.1 without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
        except OSError as exc:
            log.warning("no local network found (%s): serving on 127.0.0.1 only", exc)
            return "127.0.0.1"


def check_address(address: str) -> str:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise FieldError(Msg("err.field.bad_address", address=repr(address))) from None
    return address


def ensure_certificate(address: str, workspace=None) -> tuple[Path, Path]:
    """(cert.pem, key.pem) for `address`, made once per address with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = subdir("field", workspace)
    cert_path, key_path = folder / f"cert-{address}.pem", folder / f"key-{address}.pem"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7):
            return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Latih field mode {address}")])
    now = dt.datetime.now(dt.timezone.utc)
    alt = [x509.IPAddress(ipaddress.ip_address(address)), x509.DNSName("localhost")]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("made a self-signed certificate for %s in %s", address, folder)
    return cert_path, key_path


def streamlit_command(address: str, port: int, cert: Path | None = None, key: Path | None = None) -> list[str]:
    command = [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.address", address,
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--browser.serverAddress", address]
    if cert and key:
        command += ["--server.sslCertFile", str(cert), "--server.sslKeyFile", str(key)]
    return command
