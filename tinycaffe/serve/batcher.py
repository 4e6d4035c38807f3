"""Dynamic batching across clients, as NVIDIA Triton does.

With ``max_batch`` > 1 the compute thread, having taken one client's batch,
also takes the batches already waiting (or arriving within ``max_delay``)
up to ``max_batch`` of them, writes them one after another (along the first
axis) straight into the Source's tops, runs one forward, and scatters the
rows back: each client gets its own RESULT, in its own order. That needs a
net whose every output and returned blob is per sample (first axis = the
batch); a mean over the batch such as Accuracy cannot be split, so the
server refuses batching for such a net.

The gathered count changes from one forward to the next. The Source's tops
and every blob after them keep the buffer of the largest count seen (Blob's
capacity rule, tinycaffe/blob.py), so a changing count does not reallocate
them; the memory this holds is bounded by ``max_batch`` client batches.

Whether the stacked forward gives bit-identical rows depends on the kernels
(it does for the nets in our tests: tests/serve/test_batching.py checks).
"""
from __future__ import annotations

import queue
import time
from contextlib import contextmanager

from ..errors import NetError, TinyCaffeError


class Batcher:
    """Runs client batches through the server's net, gathering up to ``max_batch`` per forward."""

    def __init__(self, server, max_batch: int = 1, max_delay: float = 0.0) -> None:
        self.server = server
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.forwards = 0  # forwards run
        self.gathered = 0  # client batches they carried
        if max_batch > 1:
            self._check(server)

    @staticmethod
    def _check(server) -> None:
        if len(server.ports) != 1:
            raise NetError("--max-batch > 1 needs a net with one Source (one link per client)")
        port = server.ports[0]
        n = {s[0] if s else None for s in port.shapes.values()}
        if len(n) != 1 or None in n:
            raise NetError(f"--max-batch > 1: source '{port.layer}' blobs must share a first (batch) axis")
        (rows,) = n
        net = server.net
        for name in list(net.outputs) + list(port.returns):
            shape = net.blobs[name].shape
            if not shape or shape[0] != rows:
                raise NetError(
                    f"--max-batch > 1 needs per-sample outputs: '{name}' has shape {shape}, not ({rows}, ...) "
                    "(a mean over the batch, like accuracy or a loss, cannot be split between clients)"
                )
        server.rows = rows

    def run(self, peer, frames) -> None:
        """Forward ``peer``'s batch, with whatever other batches are waiting (up to max_batch).

        If the net fails on a batch, the clients in that forward are told so
        and dropped; the server and its other clients go on.
        """
        if self.max_batch == 1:
            self.forwards += 1
            self.gathered += 1
            with self._failing([peer]):
                self.server.forward_one(peer, frames)
            return
        units = [(peer, frames)]
        deferred = []
        # No point waiting for more batches than the clients may have in flight (each its
        # window): with stop-and-wait clients, once every client's batch is in, go.
        limit = min(self.max_batch, max(1, self.server.in_flight_capacity()))
        deadline = time.monotonic() + self.max_delay
        work = self.server._work
        while len(units) < limit:
            left = deadline - time.monotonic()
            try:
                item = work.get(timeout=left) if left > 0 else work.get_nowait()
            except queue.Empty:
                break
            p, unit = item
            if isinstance(unit, list) and not p.failed and not any(p is q for q, _ in deferred):
                units.append(item)
            else:
                deferred.append(item)  # events, and anything of a client with an event pending, keep their order
        with self._failing([p for p, _ in units]):
            self._forward(units)
        for item in deferred:
            self.server._handle(*item)

    @contextmanager
    def _failing(self, peers):
        try:
            yield
        except TinyCaffeError as exc:
            from ..wire.errors import ErrorCode
            from .peer import FAILED

            for p in peers:
                if p.fail(exc, ErrorCode.APPLICATION, f"the cloud net failed on this batch: {exc}"):
                    self.server._work.put((p, FAILED))

    def _forward(self, units) -> None:
        server = self.server
        port = server.ports[0]
        net = server.net
        rows = server.rows
        for p, frames in units:
            p.sessions[0].ack(frames[0].seq)
        # Each client's rows go straight into the Source's tops: no stacked copy in between.
        # The tops keep their buffer while the gathered count fits (Blob's capacity rule);
        # the net notices a new shape and reshapes its layers (Net.forward's plans).
        xp = net.xp
        for n in port.names:
            blob = net.blobs[n]
            shape = (rows * len(units), *port.shapes[n][1:])
            if blob.shape != shape:
                blob.reshape(shape)
            top = blob.data
            for i, (_, frames) in enumerate(units):
                top[i * rows:(i + 1) * rows] = xp.asarray(frames[0].blobs[n])
        t0 = time.perf_counter()
        outputs = net.forward()
        server._observe(time.perf_counter() - t0)
        self.forwards += 1
        self.gathered += len(units)
        back = port.result_blobs(net) if port.returns else {}
        for i, (p, frames) in enumerate(units):
            part = slice(i * rows, (i + 1) * rows)
            if port.returns:
                p.sessions[0].result(frames[0].seq, {n: a[part] for n, a in back.items()})
            server.batch_done(p, {n: v[part] for n, v in outputs.items()}, 0.0)
