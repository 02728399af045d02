"""How a farm peer proves who it is to the broker: every peer the farm CLI, the captioner and the
add-on (ui/farm_link.py) connect shares this.

- Local peers (a loopback `tcp://` or an `ipc://` broker): the broker writes a fresh random token
  to a file only its user can read, `~/.config/mvcap/farm-<host>-<port>.token` (0600, in a 0700
  folder; `$XDG_CONFIG_HOME` is honoured). A client of the same user finds it with no flag and
  presents it with ZeroMQ's PLAIN mechanism; other local users cannot read it and are refused.
- Remote peers: CurveZMQ keys (`--curve-keys DIR --key-name NAME`), DIR/broker.key and the peer's
  own DIR/NAME.key_secret. A token is never sent to a non-loopback address.

zmq is imported only when a socket is configured, so the module loads without pyzmq.
"""
from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")


class CurveKeyError(ValueError):
    """Missing or unreadable key files (shown as a one-line error)."""


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mvcap"


def local_endpoint_key(endpoint: str) -> str | None:
    """A short name for a local broker endpoint ("tcp-5555", "ipc-<hash>"), None for any other."""
    scheme, _, rest = endpoint.partition("://")
    if scheme == "ipc" and rest:
        return "ipc-" + hashlib.sha256(os.path.abspath(rest).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    if scheme != "tcp":
        return None
    host, _, port = rest.rpartition(":")
    if not port.isdigit():
        return None
    return f"tcp-{port}" if is_loopback_host(host) else None


def is_loopback_host(host: str) -> bool:
    return host in LOOPBACK_HOSTS or (host.startswith("127.") and host.replace(".", "").isdigit())


def token_file(endpoint: str) -> Path | None:
    """Where the broker at a local `endpoint` keeps its token (None: not a local endpoint)."""
    key = local_endpoint_key(endpoint)
    return None if key is None else config_dir() / f"farm-{socket.gethostname()}-{key}.token"


def read_token(endpoint: str) -> str | None:
    """The token of the local broker at `endpoint`, or None when this user cannot find one."""
    path = token_file(endpoint)
    if path is None:
        return None
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def curve_client_options(directory: str | os.PathLike, name: str = "client") -> dict:
    """zmq socket options of a CurveZMQ client: DIR/broker.key and DIR/<name>.key_secret."""
    import zmq

    d = Path(directory)
    server_public, _ = load_certificate(d / "broker.key")
    public, secret = load_certificate(d / f"{name}.key_secret")
    if not secret:
        raise CurveKeyError(f"--curve-keys: {d}/{name}.key_secret holds no secret key")
    return {zmq.CURVE_SERVERKEY: server_public, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret}


def load_certificate(path: Path) -> tuple[bytes, bytes | None]:
    import zmq.auth

    if not path.is_file():
        raise CurveKeyError(f"--curve-keys: {path} is missing; create keys with `farm keys DIR`")
    try:
        return zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"--curve-keys: cannot read {path} ({exc}); create keys with `farm keys DIR`") from None


class PeerAuth:
    """How one peer authenticates to the broker at `endpoint`: its CurveZMQ key pair when given
    (checked now), else the local token, read again for every new socket (a restarted broker has
    a new one)."""

    def __init__(self, endpoint: str, curve_keys: str | os.PathLike | None = None, key_name: str = "client"):
        self.endpoint = endpoint
        self.key_name = key_name
        self.curve = curve_client_options(curve_keys, key_name) if curve_keys else None

    def socket_options(self) -> dict:
        """zmq options for a new socket (empty: no credentials to present)."""
        if self.curve is not None:
            return dict(self.curve)
        token = read_token(self.endpoint)
        if token is None:
            return {}
        import zmq

        return {zmq.PLAIN_USERNAME: self.key_name.encode("utf-8"), zmq.PLAIN_PASSWORD: token.encode("ascii")}

    def hint(self, keys_field: str = "--curve-keys") -> str:
        """Why a broker that stays silent may be refusing this peer ("" when nothing is known).
        `keys_field`: where this peer is given its key folder (a CLI flag, the add-on's panel field)."""
        if self.curve is not None:
            return f"; if it runs, is {self.key_name}.key in its authorized/ folder?"
        path = token_file(self.endpoint)
        if path is None:
            return f"; a broker on another machine needs {keys_field}"
        if read_token(self.endpoint) is None:
            return (f"; a broker with --curve-keys needs keys ({keys_field}), and another user's refuses "
                    f"this client (no farm token at {path})")
        return ""

    def refusal(self, auth_failed: bool, keys_field: str = "--curve-keys") -> str:
        """What a broker that failed this peer's handshake refused, after "farm at X refused ".
        `auth_failed`: it said no to the credentials (ZAP); else it dropped another mechanism."""
        if not auth_failed and self.curve is not None:
            return "this client's handshake (another security mechanism: was it started with --curve-keys?)"
        if not auth_failed:
            return f"this client's handshake (another security mechanism{self.hint(keys_field)})"
        if self.curve is not None:
            return f"this client's key ({keys_field}: is {self.key_name}.key in the broker's authorized/ folder?)"
        return (f"this client's farm token (a broker started by another user, or restarted: "
                f"{token_file(self.endpoint)} is not its token)")


def watch_handshake(sock):
    """A monitor of `sock`'s failed handshakes for `wait_reply`, made before `sock` connects (the
    first handshake may fail before a later monitor sees it); None on libzmq < 4.3."""
    import zmq

    if not hasattr(zmq, "EVENT_HANDSHAKE_FAILED_AUTH"):
        return None
    return sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                   | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def stop_watching(sock, monitor) -> None:
    if monitor is not None:
        sock.disable_monitor()
        monitor.close(linger=0)


def wait_reply(sock, monitor, timeout_ms: int) -> str:
    """Wait for a message on `sock` or a failed handshake on its `monitor` (watch_handshake):
    "reply", "timeout", "auth" (the broker refused the credentials) or "mechanism" (it dropped
    the handshake: another security mechanism)."""
    import zmq

    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    if monitor is not None:
        poller.register(monitor, zmq.POLLIN)
    ready = dict(poller.poll(timeout_ms))
    if sock in ready:
        return "reply"
    if monitor is None or monitor not in ready:
        return "timeout"
    from zmq.utils.monitor import recv_monitor_message

    return "auth" if recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH else "mechanism"
