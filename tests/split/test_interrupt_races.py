"""The two races behind the Ctrl-C flake, each forced in order rather than hoped for.

test_split_processes.py::test_ctrl_c_on_either_side_ends_both showed them about one run
in six; here each runs the same way every time.
"""
from __future__ import annotations

import signal
import socket
import threading

import numpy as np
import pytest

from tinycaffe.serve.session import Session
from tinycaffe.wire import Hello, SinkSession, specs
from tinycaffe.wire.frames import ErrorFrame
from tinycaffe.wire.transport import Transport

from .helpers import slow


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname(), timeout=slow(5))
        b, _ = listener.accept()
    return a, b


def test_ctrl_c_as_a_write_finishes_leaves_the_frame_whole_and_the_stream_usable():
    """SIGINT caught by another thread is handled when the main thread wakes, i.e. right
    after its wait for the helper's write succeeded: the write must still count as done,
    so that an ERROR can follow it (before, the wait looked unfinished for ever and the
    interrupted client closed without its ERROR)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach Python code in the main thread only")
    a, b = _tcp_pair()
    payload = np.random.default_rng(0).integers(0, 256, 8 << 20, dtype=np.uint8).tobytes()  # > socket buffers
    transport = Transport(a, "peer", timeout=slow(10), interruptible=True)
    interrupted, received, idle = threading.Event(), bytearray(), threading.Event()

    def read_after_the_signal() -> None:
        interrupted.wait(slow(10))
        b.settimeout(slow(10))
        while chunk := b.recv(1 << 20):
            received.extend(chunk)
        b.close()  # the end of the sender's linger_close

    def signal_another_thread() -> None:
        # The main thread is blocked in its wait once the helper's write has begun and stalls
        # (nobody reads yet); then the signal goes to a thread that is not the main one.
        while transport.bytes_sent == 0 and not interrupted.wait(0.01):
            pass
        threading.Event().wait(0.2)
        signal.pthread_kill(bystander.ident, signal.SIGINT)
        interrupted.set()

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    bystander = threading.Thread(target=idle.wait, args=(slow(30),), daemon=True)
    reader = threading.Thread(target=read_after_the_signal, daemon=True)
    signaller = threading.Thread(target=signal_another_thread, daemon=True)
    try:
        for t in (bystander, reader, signaller):
            t.start()
        with pytest.raises(KeyboardInterrupt):
            transport.send([payload])
            threading.Event().wait(slow(10))  # (if the signal came only after the write: take it here)
        signaller.join(slow(10))
        assert transport.finish_frame(slow(5)), "the frame, written in full by the helper, counts as unfinished"
        assert not transport.mid_frame
        transport.send([b"ERROR"], timeout=slow(5))  # the stream goes on: what the ERROR frame needs
        transport.linger_close(slow(5))
        reader.join(slow(10))
    finally:
        signal.signal(signal.SIGINT, previous)
        idle.set()
        transport.close()
        b.close()
    assert bytes(received) == payload + b"ERROR"


def test_the_peers_error_is_reported_even_when_an_ack_fails_on_it_first():
    """The compute thread may ACK a batch between the reader's taking in the client's
    ERROR frame (the endpoint is failed) and the reader's report: the session must end
    with the client's ERROR, not with "cannot send ACK: the connection has failed"."""
    shape = (2, 3)
    source_hello = Hello("source", "src", specs([("x", "float32", shape)]))
    sink_hello = Hello("sink", "edge", specs([("x", "float32", shape)]))
    ended, errors, taken = threading.Event(), [], []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        sessions: list[Session] = []

        def serve_one() -> None:
            sock, addr = listener.accept()
            s = Session(sock, f"{addr[0]}:{addr[1]}", source_hello, token=None, tls=None,
                        handshake_timeout=slow(10), frame_timeout=slow(10), idle_timeout=slow(10),
                        on_ready=lambda s: True, on_data=lambda s, f: taken.append(f),
                        on_end=lambda s, e: (errors.append(e), ended.set()),
                        on_refused=lambda s, kind, e: (errors.append(e), ended.set()))
            original = s.endpoint.next_event

            def next_event():
                ev = original()
                if isinstance(ev, ErrorFrame):
                    # The compute thread wins the race: it ACKs the batch now.
                    assert s.ack(taken[0].seq) is False
                return ev

            s.endpoint.next_event = next_event
            sessions.append(s)
            s.start()

        server = threading.Thread(target=serve_one, daemon=True)
        server.start()
        client = SinkSession.connect("127.0.0.1", port, sink_hello, timeout=slow(10), connect_timeout=slow(10))
        client.send({"x": np.zeros(shape, np.float32)})
        client.fail("client net stopped")
        assert ended.wait(slow(10))
        sessions[0].join(slow(5))
    assert len(errors) == 1
    assert "stopped with ERROR" in str(errors[0]) and "client net stopped" in str(errors[0]), errors


def test_a_client_that_gave_up_never_reconnects():
    """Ctrl-C with ``window > 1``: the Sink fails its session from the main thread while its
    background sender waits to reconnect; before, that thread went on reconnecting (and would
    have resent the batches) for the whole budget, and the interrupted client hung ~30 s."""
    from tinycaffe.wire import TransportError
    from tinycaffe.wire.resilient import ResilientSink

    clock, connects = [0.0], []

    def connect(timeout):
        connects.append(clock[0])
        raise TransportError("nobody listens", "p", "refused")

    def sleep(seconds):
        clock[0] += seconds
        if len(connects) == 2:
            sink.fail("client net stopped")  # the main thread gives up meanwhile

    sink = ResilientSink(connect, returns=False, retry_for=30.0, sleep=sleep, clock=lambda: clock[0])
    with pytest.raises(TransportError, match="reset") as info:
        sink._retrying(lambda: (_ for _ in ()).throw(TransportError("reset", "p", "closed")))
    assert "gave up after" not in str(info.value)  # it stopped at once, not when the budget ran out
    assert len(connects) == 2 and clock[0] < 1.0
    with pytest.raises(TransportError, match="the client stopped"):  # nothing more goes out, nothing retried
        sink._retrying(lambda: (_ for _ in ()).throw(TransportError("reset", "p", "closed")))
    assert len(connects) == 2


def test_the_error_never_interleaves_with_a_frame_another_thread_is_writing():
    """With ``window > 1`` a background thread writes the batches; Ctrl-C's ERROR, written by
    the main thread, must wait for that frame to end (before, the two writes could interleave
    and the server saw a checksum mismatch instead of the ERROR)."""
    from tinycaffe.wire.resilient import ResilientSink

    writing, release, order = threading.Event(), threading.Event(), []

    class Session:
        def send(self, blobs):
            writing.set()
            release.wait(slow(10))
            order.append("frame written")
            return 0

        def fail(self, message, code):
            order.append("ERROR written")

    sink, sender = _start_a_send(ResilientSink, Session)
    assert writing.wait(slow(10))
    failing = threading.Thread(target=sink.fail, args=("client net stopped",), daemon=True)  # waits up to 3 s
    failing.start()
    failing.join(0.3)  # time enough to write an ERROR at once, had it not waited
    release.set()
    sender.join(slow(10))
    failing.join(slow(10))
    assert order == ["frame written", "ERROR written"]


def test_a_send_that_does_not_end_leaves_the_error_out_and_closes():
    """If the other thread's send does not end within ``wait``, fail() closes without the ERROR."""
    from tinycaffe.wire.resilient import ResilientSink

    writing, release, order = threading.Event(), threading.Event(), []

    class Transport:
        def close(self):
            order.append("closed")

    class Session:
        transport = Transport()

        def send(self, blobs):
            writing.set()
            release.wait(slow(10))
            return 0

        def fail(self, message, code):
            order.append("ERROR written")

    sink, sender = _start_a_send(ResilientSink, Session)
    try:
        assert writing.wait(slow(10))
        sink.fail("client net stopped", wait=0.1)
        assert order == ["closed"]
    finally:
        release.set()
        sender.join(slow(10))


def _start_a_send(sink_class, session_class):
    """A sink whose one batch is being written by another thread, as with ``window > 1``."""
    sink = sink_class(lambda timeout: session_class(), returns=True, retry_for=0.0)
    sink.open(1.0)
    sender = threading.Thread(target=sink.send, args=({"x": np.zeros(2, np.float32)},), daemon=True)
    sender.start()
    return sink, sender
