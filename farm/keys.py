"""CurveZMQ keys for the farm (`farm keys DIR`, `--curve-keys DIR`).

Layout of DIR:
    broker.key, broker.key_secret      the broker's key pair
    client.key, client.key_secret      a key pair for workers, clients and the captioner
    authorized/<name>.key              public keys the broker admits (client.key is copied here)

`farm keys DIR --name host2` adds another key pair and authorises it. Copy DIR/broker.key and the
peer's own pair to a remote machine; the broker's secret never leaves the broker.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import zmq
import zmq.auth


class CurveKeyError(ValueError):
    """Missing or unreadable key files (shown as a one-line error)."""


def create_keys(directory: str | os.PathLike, name: str = "client") -> dict[str, Path]:
    d = Path(directory)
    (d / "authorized").mkdir(parents=True, exist_ok=True)
    made = {}
    if not (d / "broker.key_secret").exists():
        zmq.auth.create_certificates(str(d), "broker")
    made["broker"] = d / "broker.key"
    if not (d / f"{name}.key_secret").exists():
        zmq.auth.create_certificates(str(d), name)
    shutil.copyfile(d / f"{name}.key", d / "authorized" / f"{name}.key")
    made[name] = d / f"{name}.key"
    os.chmod(d / "broker.key_secret", 0o600)
    os.chmod(d / f"{name}.key_secret", 0o600)
    return made


def _load(path: Path) -> tuple[bytes, bytes | None]:
    try:
        return zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"--curve-keys: cannot read {path} ({exc}); create keys with `farm keys DIR`") from None


def server_options(directory: str | os.PathLike) -> dict:
    public, secret = _load(Path(directory) / "broker.key_secret")
    if not secret:
        raise CurveKeyError(f"--curve-keys: {directory}/broker.key_secret holds no secret key")
    return {zmq.CURVE_SERVER: 1, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret}


def client_options(directory: str | os.PathLike, name: str = "client") -> dict:
    d = Path(directory)
    server_public, _ = _load(d / "broker.key")
    public, secret = _load(d / f"{name}.key_secret")
    if not secret:
        raise CurveKeyError(f"--curve-keys: {d}/{name}.key_secret holds no secret key")
    return {zmq.CURVE_SERVERKEY: server_public, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret}


def start_authenticator(ctx: zmq.Context, directory: str | os.PathLike):
    """A ThreadAuthenticator that admits only the public keys in DIR/authorized."""
    from zmq.auth.thread import ThreadAuthenticator

    authorized = Path(directory) / "authorized"
    if not authorized.is_dir():
        raise CurveKeyError(f"--curve-keys: {authorized} is missing; create keys with `farm keys DIR`")
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(authorized))
    return auth
