"""A secured link both ways: TLS (checked against a CA), optional client certificates, a shared token.

The findings: a rogue sink fed the server and read back its answers, and a
rogue source on the client's port got the client's activations while the
client exited 0. Certificates come from a throwaway CA made by ``trustme``.
"""
from __future__ import annotations

import numpy as np
import pytest

trustme = pytest.importorskip("trustme")

import tinycaffe  # noqa: E402
from tinycaffe.serve.tls import client_context, server_context  # noqa: E402
from tinycaffe.wire import ErrorCode, PeerError, TransportError  # noqa: E402

from .helpers import ServerThread, batches, expected, run_client, slow  # noqa: E402


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate, and an unrelated CA."""
    d = tmp_path_factory.mktemp("pki")
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    other.cert_pem.write_to_path(str(d / "other_ca.pem"))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    other.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(d / "rogue.pem"))
    ca.issue_cert("edge-camera-1").private_key_and_cert_chain_pem.write_to_path(str(d / "client.pem"))
    return d


def test_tls_and_token_carry_a_run(pki):
    with ServerThread(keep_serving=True, tls=server_context(pki / "server.pem"), token=b"t0ken") as st:
        xs = batches(3, seed=7)
        got = run_client(st.port, xs, token="t0ken", tls=client_context(pki / "ca.pem"))
        for x, y in zip(xs, got):
            np.testing.assert_array_equal(y, expected(x))


def test_a_peer_without_the_token_is_refused_and_counted(pki):
    with ServerThread(keep_serving=True, tls=server_context(pki / "server.pem"), token=b"t0ken") as st:
        for token in ("", "guess"):
            with pytest.raises(PeerError) as info:
                run_client(st.port, batches(1, seed=0), token=token, tls=client_context(pki / "ca.pem"))
            assert info.value.code == ErrorCode.AUTH
        assert st.server.log.counts["auth"] == 2 and st.server.batches == 0 and st.ended == {}


def test_the_client_refuses_a_server_its_ca_does_not_vouch_for(pki):
    """A rogue source with some other certificate never sees a byte of the client's data."""
    with ServerThread(keep_serving=True, tls=server_context(pki / "rogue.pem")) as rogue:
        with pytest.raises(TransportError, match="not who it claims"):
            run_client(rogue.port, batches(1, seed=0), tls=client_context(pki / "ca.pem"))
        assert rogue.server.batches == 0 and rogue.ended == {}


def test_a_plain_client_cannot_talk_to_a_tls_server(pki):
    with ServerThread(keep_serving=True, tls=server_context(pki / "server.pem"), handshake_timeout=2.0) as st:
        with pytest.raises((TransportError, PeerError)):
            run_client(st.port, batches(1, seed=0))
        assert st.server.batches == 0


def test_client_certificates_when_the_server_asks(pki):
    ctx = server_context(pki / "server.pem", client_ca=pki / "ca.pem")
    with ServerThread(keep_serving=True, tls=ctx, handshake_timeout=2.0) as st:
        with pytest.raises(TransportError):
            run_client(st.port, batches(1, seed=0), tls=client_context(pki / "ca.pem"))
        got = run_client(st.port, batches(1, seed=0), tls=client_context(pki / "ca.pem", pki / "client.pem"))
        assert len(got) == 1


def test_the_sink_layer_takes_tls_and_token_from_the_environment(pki, tmp_path, monkeypatch):
    from .helpers import cloud_net

    token_file = tmp_path / "token"
    token_file.write_text("t0ken\n")
    monkeypatch.setenv("TINYCAFFE_TLS_CA", str(pki / "ca.pem"))
    monkeypatch.setenv("TINYCAFFE_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("TINYCAFFE_HOSTS", "localhost=127.0.0.1")  # the certificate names localhost
    with ServerThread(cloud_net(), keep_serving=True, tls=server_context(pki / "server.pem"), token=b"t0ken") as st:
        client = tinycaffe.Net(
            'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: [4, 8] } } }'
            f'layer {{ name: "sink" type: "Sink" bottom: "x" top: "prob" sink_param {{ host_name: "localhost" '
            f'port: {st.port} return_top: "prob" }} }}'
        )
        x = batches(1, seed=9)[0]
        np.testing.assert_array_equal(client.forward(x=x)["prob"], expected(x))
        # Over TLS both sides leave integrity to TLS's record MACs: no payload checksum on top.
        assert client.layers[-1].session.session.endpoint.checksum is False
        client.close()


def test_plain_tcp_keeps_the_payload_checksum():
    from tinycaffe.wire import SinkSession

    from .helpers import hello

    with ServerThread(keep_serving=True) as st:
        s = SinkSession.connect("127.0.0.1", st.port, hello(), timeout=slow(10), connect_timeout=slow(10))
        assert s.endpoint.checksum in ("xxh3", "crc32")
        s.close(slow(10))


def test_many_tls_clients_with_windows_read_and_write_at_once(pki):
    """The server reads a client in one thread and writes to it in another: TLS state must stay whole."""
    from tinycaffe.wire import SinkSession

    from .helpers import hello
    from .test_server import run_clients

    with ServerThread(keep_serving=True, max_clients=8, tls=server_context(pki / "server.pem")) as st:
        results, errors = run_clients(st.port, 8, 10, tls=client_context(pki / "ca.pem"))
        assert not errors, errors
        for i, got in results.items():
            for x, y in zip(batches(10, seed=i), got):
                np.testing.assert_array_equal(y, expected(x))
        # window 4: DATA keeps arriving while ACKs and RESULTs go out
        s = SinkSession.connect("127.0.0.1", st.port, hello(window=4), timeout=slow(10), connect_timeout=slow(10),
                                tls=client_context(pki / "ca.pem"))
        xs = batches(12, seed=77)
        for x in xs[:4]:
            s.send({"x": x})
        for k, x in enumerate(xs):
            np.testing.assert_array_equal(s.result(slow(10)).blobs["prob"], expected(x))
            if k + 4 < len(xs):
                s.send({"x": xs[k + 4]})
        s.close(slow(10))
