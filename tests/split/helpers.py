"""Running a client net and a cloud net side by side in one process, and CLI children."""
from __future__ import annotations

import os
import queue
import socket
import subprocess
import threading
import time

import numpy as np

import tinycaffe
from tinycaffe.errors import EndOfStream

from ..serve import helpers as serve_helpers


def slow(seconds: float) -> float:
    """A generous wait limit, scaled by $TINYCAFFE_TEST_SLOW (default 1) on slow machines."""
    return seconds * float(os.environ.get("TINYCAFFE_TEST_SLOW", "1"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CloudThread:
    """The study's way: ``cloud.forward()`` in a thread until its client says BYE; keeps every output.

    On BYE the cloud net is closed, which answers the BYE of any other link.
    """

    def __init__(self, cloud: "tinycaffe.Net", blob: str):
        self.cloud, self.blob = cloud, blob
        self.outputs: list[np.ndarray] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                self.cloud.forward()
                self.outputs.append(np.array(self.cloud.blobs[self.blob].data))
        except EndOfStream:
            self.cloud.close()
        except BaseException as exc:  # the test inspects it
            self.error = exc

    def join(self, timeout: float = 20.0) -> None:
        self.thread.join(slow(timeout))
        assert not self.thread.is_alive(), "cloud thread did not finish"


class ServerThread(serve_helpers.ServerThread):
    """``tinycaffe.serve.Server(cloud).run()`` in a thread; keeps each client's outputs of ``blob``."""

    def __init__(self, cloud: "tinycaffe.Net", blob: str | None = None, **options):
        self.blob = blob
        self.outputs: dict[int, list[np.ndarray]] = {}
        super().__init__(cloud, on_batch=self._batch, **options)

    def _batch(self, peer, outputs, loss) -> None:
        if self.blob is not None:
            self.outputs.setdefault(peer.number, []).append(np.array(self.server.net.blobs[self.blob].data))

    def join(self, timeout: float = 20.0) -> None:
        self.thread.join(slow(timeout))
        assert not self.thread.is_alive(), "server did not finish"
        self.server.close()

    def close(self) -> None:
        self.server.close()
        self.thread.join(slow(10))


class Lines:
    """A child's output read by a thread, so a wait for a line has a deadline that holds."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.q: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.q.put(line)
        self.q.put(None)

    def wait_for(self, needle: str, timeout: float = 30.0) -> str:
        """Everything read up to the first line containing ``needle``; AssertionError after ``timeout``."""
        deadline = time.monotonic() + slow(timeout)
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.q.get(timeout=max(left, 0)) if left > 0 else None
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"{needle!r} not printed within {slow(timeout):g} s; got {''.join(self.seen)!r}")
            self.seen.append(line)
            if needle in line:
                return "".join(self.seen)

    def rest(self, timeout: float = 30.0) -> str:
        """All output once the child has exited."""
        self.thread.join(slow(timeout))
        while True:
            try:
                line = self.q.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        return "".join(self.seen)


def sink(port, options="", blob="pool1", name="sink", top=""):
    """A Sink layer sending ``blob`` to ``port`` (``options``: more sink_param fields)."""
    tops = f'top: "{top}" ' if top else ""
    return f'layer {{ name: "{name}" type: "Sink" bottom: "{blob}" {tops}sink_param {{ port: {port} {options} }} }}'


def source(port, shape=(100, 32, 16, 16), options="", blob="pool1", name="src"):
    """A Source layer receiving ``blob`` of ``shape`` on ``port``."""
    dims = ", ".join(map(str, shape))
    return (f'layer {{ name: "{name}" type: "Source" top: "{blob}" source_param {{ port: {port} {options} }}'
            f' input_param {{ shape {{ dim: [{dims}] }} }} }}')
