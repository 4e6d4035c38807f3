"""Running a client net and a cloud net side by side in one process (two threads)."""
from __future__ import annotations

import socket
import threading

import numpy as np

import tinycaffe
from tinycaffe.errors import EndOfStream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CloudThread:
    """Serve ``cloud`` in a thread until its client says BYE; keeps every output."""

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
            pass
        except BaseException as exc:  # the test inspects it
            self.error = exc

    def join(self, timeout: float = 20.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "cloud thread did not finish"


def sink(port, options="", blob="pool1", name="sink", top=""):
    """A Sink layer sending ``blob`` to ``port`` (``options``: more sink_param fields)."""
    tops = f'top: "{top}" ' if top else ""
    return f'layer {{ name: "{name}" type: "Sink" bottom: "{blob}" {tops}sink_param {{ port: {port} {options} }} }}'


def source(port, shape=(100, 32, 16, 16), options="", blob="pool1", name="src"):
    """A Source layer receiving ``blob`` of ``shape`` on ``port``."""
    dims = ", ".join(map(str, shape))
    return (f'layer {{ name: "{name}" type: "Source" top: "{blob}" source_param {{ port: {port} {options} }}'
            f' input_param {{ shape {{ dim: [{dims}] }} }} }}')
