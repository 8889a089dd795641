"""TLS for ksrv's own servers: a certificate and key pair (`--tls-cert`, `--tls-key`) -> context.

Read once at start, so a missing or mismatched file is one clear error before anything
listens, never a failed handshake later. TLS 1.2 is the floor, as Go's (and so Knative's and
Istio's) default; the ciphers are Python's defaults.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from ksrv.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """A PEM certificate (chain) and its private key."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context.

        Raises:
            InvalidInput: a file is missing or unreadable, or the key does not match.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            message = f"cannot use TLS certificate {self.cert} with key {self.key}: {exc}"
            raise InvalidInput(message) from exc
        return context

    def pair(self) -> tuple[bytes, bytes]:
        """(key, certificate chain) as bytes, as grpcio's server credentials take them."""
        return self.key.read_bytes(), self.cert.read_bytes()


def tls_files(cert: Path | None, key: Path | None) -> TLSFiles | None:
    """The pair from two CLI options, None when neither is given.

    Raises:
        InvalidInput: only one of them is given.
    """
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise InvalidInput("--tls-cert and --tls-key go together: give both or neither")
    return TLSFiles(cert, key)
