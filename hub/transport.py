"""How the hub's gRPC server meets the network: TLS (mutual TLS as an option), and the connection and
message limits that keep one client from holding the hub's sockets or memory (README, "Transport security").

TLS is configured by file paths (PEM): tls_cert_file and tls_key_file turn it on; tls_client_ca_file also
makes it mutual, requiring every client to present a certificate issued by that CA. With none of them the
hub listens in plaintext (`make run`'s default, fine on a developer's machine or behind a TLS proxy).
"""

import pathlib
from dataclasses import dataclass

import grpc

from hub.config import Config, RefusedConfiguration


@dataclass(frozen=True)
class TlsFiles:
    cert: bytes
    key: bytes
    client_ca: bytes | None  # mutual TLS when set


def tls_files(config: Config) -> TlsFiles | None:
    """The configured certificate, key and client CA, read and checked; None for plaintext. Raises
    RefusedConfiguration for a half-configured TLS or a file that cannot be read or holds no PEM."""
    if not (config.tls_cert_file or config.tls_key_file or config.tls_client_ca_file):
        return None
    if not (config.tls_cert_file and config.tls_key_file):
        raise RefusedConfiguration("TLS needs both tls_cert_file and tls_key_file (tls_client_ca_file adds mutual TLS)")
    files = TlsFiles(
        _pem(config.tls_cert_file, "CERTIFICATE"), _pem(config.tls_key_file, "PRIVATE KEY"),
        _pem(config.tls_client_ca_file, "CERTIFICATE") if config.tls_client_ca_file else None)
    return files


def _pem(path: str, kind: str) -> bytes:
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise RefusedConfiguration(f"cannot read {path}: {exc.strerror}") from None
    # grpc core would only log a bad file and fail the bind without saying why: say it here.
    if b"-----BEGIN" not in data or kind.encode() not in data:
        raise RefusedConfiguration(f"{path} holds no PEM {kind.lower()}")
    return data


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([(files.key, files.cert)], root_certificates=files.client_ca,
                                       require_client_auth=files.client_ca is not None)


def connection_options(config: Config) -> list[tuple[str, int]]:
    """grpc core's limits on messages and connections, from the configuration (seconds become ms).

    A request larger than max_message_bytes is refused by core with RESOURCE_EXHAUSTED before any hub
    code runs. A connection that does not finish its TLS/HTTP2 handshake within handshake_timeout_s is
    closed (a slow-loris client holds no socket for long); one without a call for max_connection_idle_s
    is closed with GOAWAY; keepalive pings find peers that vanished without closing (their Play
    streams would otherwise hold their slots). max_connection_age_s (0: never) makes long-lived clients
    reconnect, spreading them over workers and replicas; calls in flight get max_connection_age_grace_s."""
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.server_handshake_timeout_ms", _ms(config.handshake_timeout_s)),
        ("grpc.keepalive_time_ms", _ms(config.keepalive_time_s)),
        ("grpc.keepalive_timeout_ms", _ms(config.keepalive_timeout_s)),
        # Without this, a keepalive ping left unanswered by a vanished peer closed nothing within 10 s in
        # tests/e2e/test_transport.py (grpc 1.85): core's own ping timeout (a minute) governed instead.
        ("grpc.http2.ping_timeout_ms", _ms(config.keepalive_timeout_s)),
    ]
    if config.max_connection_idle_s > 0:
        options.append(("grpc.max_connection_idle_ms", _ms(config.max_connection_idle_s)))
    if config.max_connection_age_s > 0:
        options += [("grpc.max_connection_age_ms", _ms(config.max_connection_age_s)),
                    ("grpc.max_connection_age_grace_ms", _ms(config.max_connection_age_grace_s))]
    return options


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
