"""TLS contexts and the shared token: the server's name for :mod:`tinycaffe.wire.tls`.

They live in the wire package because both ends need them (the Sink layer and
this server); see that module for making a test CA.
"""
from ..wire.tls import (
    ENV_CA,
    ENV_CERT,
    ENV_KEY,
    ENV_TOKEN,
    ENV_TOKEN_FILE,
    client_context,
    client_settings,
    is_loopback,
    read_token,
    server_context,
)

__all__ = ["ENV_CA", "ENV_CERT", "ENV_KEY", "ENV_TOKEN", "ENV_TOKEN_FILE", "client_context", "client_settings",
           "is_loopback", "read_token", "server_context"]
