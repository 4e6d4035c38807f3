"""TLS contexts and the shared token, for both ends of the wire.

The server proves who it is with a certificate; the client checks it against
a CA file (``TINYCAFFE_TLS_CA``). A server may also ask clients for
certificates signed by a CA it trusts (``--tls-client-ca``). On top of that,
a shared token travels in the client's HELLO (inside TLS) and the server
compares it in constant time. Tokens are read from a file or an environment
variable, never from the command line (where ``ps`` would show them).

To make a test CA and a server certificate (for experiments; use your
organisation's CA in production)::

    python -c "import trustme; ca = trustme.CA(); ca.cert_pem.write_to_path('ca.pem'); \\
      c = ca.issue_cert('localhost', '127.0.0.1'); c.private_key_and_cert_chain_pem.write_to_path('server.pem')"
    tinycaffe serve cloud.prototxt --tls-cert server.pem ...
    TINYCAFFE_TLS_CA=ca.pem tinycaffe test client.prototxt ...
"""
from __future__ import annotations

import os
import ssl
from pathlib import Path

from tinycaffe.errors import WireError

#: Client-side environment variables.
ENV_CA = "TINYCAFFE_TLS_CA"
ENV_CERT = "TINYCAFFE_TLS_CERT"
ENV_KEY = "TINYCAFFE_TLS_KEY"
ENV_TOKEN = "TINYCAFFE_TOKEN"
ENV_TOKEN_FILE = "TINYCAFFE_TOKEN_FILE"


def server_context(cert: str | Path, key: str | Path | None = None, client_ca: str | Path | None = None
                   ) -> ssl.SSLContext:
    """A server context from a PEM certificate chain (and key, if not in the same file).

    ``client_ca``: require client certificates signed by this CA.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), None if key is None else str(key))
        if client_ca is not None:
            ctx.load_verify_locations(str(client_ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as e:
        raise WireError(f"TLS: cannot load the server certificate {cert} / CA {client_ca}: {e}") from None
    return ctx


def client_context(ca: str | Path, cert: str | Path | None = None, key: str | Path | None = None
                   ) -> ssl.SSLContext:
    """A client context that trusts only ``ca`` and checks the server's host name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(str(ca))
        if cert is not None:
            ctx.load_cert_chain(str(cert), None if key is None else str(key))
    except (OSError, ssl.SSLError) as e:
        raise WireError(f"TLS: cannot load the CA {ca} / client certificate {cert}: {e}") from None
    return ctx


def read_token(path: str | Path | None = None, env: str = ENV_TOKEN) -> bytes | None:
    """The shared token from ``path`` (first line, stripped) or else from ``$env``; None when neither is set."""
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise WireError(f"cannot read the token file {path}: {e}") from None
        if not text:
            raise WireError(f"the token file {path} is empty")
        return text.encode("utf-8")
    value = os.environ.get(env, "")
    return value.encode("utf-8") if value else None


def client_settings(host: str) -> tuple[ssl.SSLContext | None, str]:
    """(TLS context or None, token or "") for a Sink, from the environment (see module doc)."""
    ca = os.environ.get(ENV_CA)
    tls = client_context(ca, os.environ.get(ENV_CERT) or None, os.environ.get(ENV_KEY) or None) if ca else None
    token = read_token(os.environ.get(ENV_TOKEN_FILE) or None)
    return tls, (token or b"").decode("utf-8")


def is_loopback(bind: str) -> bool:
    """True when ``bind`` only listens on this machine."""
    import ipaddress

    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False  # "" (every interface) or a host name
