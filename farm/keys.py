"""CurveZMQ keys for the farm (`farm keys DIR --name NAME`, `--curve-keys DIR --key-name NAME`).

Layout of DIR:
    broker.key, broker.key_secret      the broker's key pair
    <name>.key, <name>.key_secret      a peer's key pair (default name: client)
    authorized/<name>.key              public keys the broker admits; NAME is who the peer is

Give workers, captioners and submitters key pairs of their own (`farm keys DIR --name gpu-node-1`):
the broker knows a worker as NAME:<worker name>, so no key can pose as another's worker, and
removing authorized/NAME.key shuts that peer out. Copy DIR/broker.key and the peer's own pair to
its machine; the broker's secret never leaves the broker. Secret files are created 0600 (never
readable by others, not even for a moment); a new DIR is 0700.
NAME is a plain file name, and not `broker`, `local` (every local-token client is the peer `local`,
the owner of their jobs: a key by that name would manage them) or one holding ':'.
"""
from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

import zmq

from blender_addon.contract.peer_auth import CurveKeyError, load_certificate
from blender_addon.rig.assets import identifier_problem

__all__ = ["CurveKeyError", "authorized_keys", "create_keys", "server_options"]

KEY_NAME_SEPARATOR = ":"  # in `NAME:worker`; no key name may hold it
LOCAL_PEER = "local"  # who every client holding the broker user's token is (farm/broker/gate.py)


def create_keys(directory: str | os.PathLike, name: str = "client") -> dict[str, Path]:
    """The broker's pair (kept when present) and the pair `name`, which is authorised."""
    problem = key_name_problem(name)
    if problem:
        raise CurveKeyError(f"key name {name!r} is not allowed: {problem}")
    d = Path(directory)
    if not d.exists():
        d.mkdir(parents=True, mode=0o700)
    (d / "authorized").mkdir(exist_ok=True)
    for who in ("broker", name):
        if not (d / f"{who}.key_secret").exists():
            _write_pair(d, who)
    shutil.copyfile(d / f"{name}.key", d / "authorized" / f"{name}.key")
    return {"broker": d / "broker.key", name: d / f"{name}.key"}


def key_name_problem(name: str) -> str | None:
    """Why `name` cannot name a peer's key, or None."""
    if name == "broker":
        return "it is the broker's own pair"
    if name == LOCAL_PEER:  # the owner of every job a token client submitted: it would manage them
        return "it is the name of every client holding the broker user's token"
    if KEY_NAME_SEPARATOR in name:
        return f"it contains {KEY_NAME_SEPARATOR!r}"
    problem = identifier_problem(name) or identifier_problem(f"{name}.key_secret")
    return problem and f"{problem} (a key name is a file name: DIR/NAME.key_secret)"


def _write_pair(d: Path, name: str) -> None:
    public, secret = zmq.curve_keypair()
    stamp = f"#   Generated on {datetime.datetime.now():%Y-%m-%d %H:%M:%S} by farm keys\n"
    body = f"metadata\ncurve\n    public-key = \"{public.decode()}\"\n"
    _write_new(d / f"{name}.key_secret", stamp + "#   ZeroMQ CURVE **Secret** Certificate: keep it to yourself\n\n"
               + body + f"    secret-key = \"{secret.decode()}\"\n", 0o600)
    _write_new(d / f"{name}.key", stamp + "#   ZeroMQ CURVE Public Certificate\n\n" + body, 0o644)


def _write_new(path: Path, text: str, mode: int) -> None:
    """Create `path` with `mode` from the first byte on (O_EXCL: an existing file is an error)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)
    os.chmod(path, mode)  # the umask may have taken bits away from a public key


def server_options(directory: str | os.PathLike) -> dict:
    public, secret = load_certificate(Path(directory) / "broker.key_secret")
    if not secret:
        raise CurveKeyError(f"--curve-keys: {directory}/broker.key_secret holds no secret key")
    return {zmq.CURVE_SERVER: 1, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret}


def authorized_keys(directory: str | os.PathLike) -> dict[bytes, str]:
    """Public key -> key name, from DIR/authorized/<name>.key. Unreadable files and names with
    the separator or named `local` (a token client's name) are left out (the caller logs nothing
    here: it asks again when a key is unknown)."""
    authorized = Path(directory) / "authorized"
    if not authorized.is_dir():
        raise CurveKeyError(f"--curve-keys: {authorized} is missing; create keys with `farm keys DIR`")
    keys = {}
    for path in sorted(authorized.glob("*.key")):
        if KEY_NAME_SEPARATOR in path.stem or path.stem == LOCAL_PEER:
            continue
        try:
            public, _ = load_certificate(path)
        except CurveKeyError:
            continue
        keys[public] = path.stem
    return keys
