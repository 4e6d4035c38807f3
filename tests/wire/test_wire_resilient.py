"""Which failures a reconnecting client retries, and that a refusal is never retried."""
from __future__ import annotations

import pytest

from tinycaffe.wire import ErrorCode, LocalProtocolError, PeerError, ProtocolError, TransportError
from tinycaffe.wire.resilient import ResilientSink, retriable


@pytest.mark.parametrize(
    "exc, again",
    [
        (TransportError("reset", "p", "closed"), True),
        (TransportError("nobody listens", "p", "refused"), True),
        (PeerError("busy", ErrorCode.BUSY, "busy"), True),
        (PeerError("stopping", ErrorCode.SHUTDOWN, "stopping"), True),
        (TransportError("no answer", "p", "timeout"), False),
        (TransportError("bad certificate", "p", "tls"), False),
        (PeerError("wrong token", ErrorCode.AUTH, "token"), False),
        (PeerError("wrong net", ErrorCode.MISMATCH, "shapes"), False),
        (PeerError("the cloud net raised", ErrorCode.APPLICATION, "x"), False),
        (ProtocolError("garbage"), False),
        (LocalProtocolError("misuse"), False),
    ],
)
def test_what_is_retried(exc, again):
    assert retriable(exc) is again


def test_a_refusal_during_reconnect_is_raised_at_once():
    """After a reset, the new server refuses the token: no loop until the budget runs out."""
    calls = []

    def connect(timeout):
        calls.append(timeout)
        raise PeerError("wrong token", ErrorCode.AUTH, "token")

    sink = ResilientSink(connect, returns=True, retry_for=3600.0, sleep=lambda s: None)

    def op():
        raise TransportError("reset", "p", "closed")

    with pytest.raises(PeerError, match="wrong token"):
        sink._retrying(op)
    assert len(calls) == 1


def test_an_outage_longer_than_the_budget_ends_with_the_cause():
    clock = [0.0]

    def connect(timeout):
        raise TransportError("nobody listens", "p", "refused")

    sink = ResilientSink(connect, returns=True, retry_for=1.0,
                         sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0])
    with pytest.raises(TransportError, match="gave up after .* reconnect attempts in 1 s") as info:
        sink._retrying(lambda: (_ for _ in ()).throw(TransportError("reset", "p", "closed")))
    assert info.value.kind == "closed"
