"""TLS over a plain socket that one thread may read while another writes.

An ``ssl.SSLSocket`` must not be read and written from two threads at once
(OpenSSL's connection state is shared: a read may have to write, e.g. a TLS
1.3 key update), yet the server reads each client in one thread and writes
to it from another. :class:`TLSStream` keeps the TLS state in an
``ssl.SSLObject`` over memory buffers, touched only under a lock and never
while waiting on the network. The connection is read through one socket
object and written through a duplicate of it (``socket.dup``), so that each
side keeps its own timeout; :attr:`reader` and :attr:`writer` offer the few
socket methods the transport uses.
"""
from __future__ import annotations

import socket
import ssl
import threading
import time

# Ciphertext per socket read. 256 KB rather than 64 KB: fewer trips through the lock and
# the BIO per big frame (bench/results/wire.md).
_RECV = 256 * 1024
_WRITE_CHUNK = 256 * 1024  # plaintext per SSL write: bounds the ciphertext held in memory


class TLSStream:
    """A TLS connection on ``sock``; call :meth:`handshake` first."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None) -> None:
        self.raw = sock
        self.raw_send = sock.dup()  # its own timeout: the writer's deadlines are not the reader's
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_side=server_side, server_hostname=server_hostname)
        self._lock = threading.Lock()  # the TLS state and its buffers
        self._send_lock = threading.Lock()  # ciphertext leaves in the order it was made
        self._rbuf = bytearray(_RECV)  # ciphertext lands here (not in a fresh 256 KB bytes per read)
        self._rview = memoryview(self._rbuf)

    # ---- what the transport uses ------------------------------------------------------

    def handshake(self, timeout: float) -> None:
        """The TLS handshake, ``timeout`` seconds in all; raises ssl.SSLError, OSError or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                try:
                    self._tls.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
            self._flush()
            if done:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("TLS handshake timed out")
            self.raw.settimeout(left)
            data = self.raw.recv(_RECV)
            if not data:
                raise ssl.SSLEOFError("the peer closed the connection during the TLS handshake")
            with self._lock:
                self._in.write(data)

    def recv_into(self, buffer, nbytes: int = 0) -> int:
        """Decrypted bytes into ``buffer`` (0 at the end of the stream); waits as ``settimeout`` says.

        Every record already received is decrypted in this one call (a TLS read gives at
        most one 16 KB record, and a 3.3 MB frame is some 200 of them): the caller's
        per-call work is paid once per socket read of ciphertext, not once per record.
        """
        view = memoryview(buffer).cast("B")
        want = min(nbytes or len(view), len(view))  # never past the buffer (a 0-byte read would mean EOF)
        if not want:
            return 0
        got = 0
        while True:
            eof = False
            with self._lock:
                try:
                    while got < want:
                        n = self._tls.read(want - got, view[got:want])
                        if not n:  # the peer's close_notify (CPython returns 0 once it is in)
                            eof = True
                            break
                        got += n
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    eof = True  # the peer's close_notify
            if self._out.pending:
                self._flush()  # a read may have produced records to send (key update, alert)
            if got or eof:
                return got
            n = self.raw.recv_into(self._rbuf)
            if not n:
                return 0  # closed without close_notify: the decoder reports a cut frame
            with self._lock:
                self._in.write(self._rview[:n])

    def sendall(self, data) -> None:
        """Encrypt and send all of ``data`` (through the duplicate socket)."""
        view = memoryview(data).cast("B")
        with self._send_lock:
            for i in range(0, len(view), _WRITE_CHUNK):
                piece = view[i : i + _WRITE_CHUNK]
                with self._lock:
                    while len(piece):
                        piece = piece[self._tls.write(piece):]
                    out = self._out.read()
                if out:
                    self.raw_send.sendall(out)

    def _flush(self) -> None:
        with self._send_lock:
            with self._lock:
                out = self._out.read()
            if out:
                self.raw_send.sendall(out)

    def shutdown(self, how: int) -> None:
        self.raw.shutdown(how)

    def close(self) -> None:
        self.raw_send.close()
        self.raw.close()

    @property
    def reader(self) -> _Side:
        """The reading side: ``recv_into`` and its own ``settimeout``."""
        return _Side(self, self.raw)

    @property
    def writer(self) -> _Side:
        """The writing side: ``sendall`` and its own ``settimeout``."""
        return _Side(self, self.raw_send)

    @property
    def duplex(self) -> _Side:
        """Both sides with one timeout, for a single thread that reads and writes."""
        return _Side(self, self.raw, self.raw_send)


class _Side:
    """One direction of a TLSStream, shaped like the socket the transport expects."""

    def __init__(self, stream: TLSStream, *socks: socket.socket) -> None:
        self._stream = stream
        self._socks = socks
        self.family = socks[0].family

    def settimeout(self, timeout: float | None) -> None:
        for sock in self._socks:
            sock.settimeout(timeout)

    def recv_into(self, buffer, nbytes: int = 0) -> int:
        return self._stream.recv_into(buffer, nbytes)

    def sendall(self, data) -> None:
        self._stream.sendall(data)

    def shutdown(self, how: int) -> None:
        self._stream.shutdown(how)

    def close(self) -> None:
        self._stream.close()
