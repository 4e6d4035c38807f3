"""Per-layer forward times and blob sizes of one net on one machine (``tinycaffe profile``).

A profile is a JSON document, written once on the client device and once on the
cloud machine, that the planner reads::

    {
      "format": "tinycaffe-profile/2",           # /1: the same without "wire" (still read)
      "model": "prototxt/cifar10_full.prototxt",   # the prototxt profiled
      "net": "CIFAR10_full_deploy",                # its name field
      "phase": "test",
      "batch": 100,                                # images per forward
      "weights": null,                             # caffemodel path, or null (random weights)
      "repeats": 10, "warmup": 2,                  # timed forwards, and untimed ones before
      "machine": {
        "cpu": "Intel(R) Xeon(R) ...", "cores": 2,  # model name, cores the process may use
        "threads": 1,                               # threads the kernels used
        "kernels": "numba",                         # numba | numpy | gpu
        "device": "cpu", "blas": "openblas 0.3.27 (Haswell)",
        "tinycaffe": "0.1.0", "python": "3.12.3", "numpy": "2.1.3",
        "loadavg": [0.5, 0.4, 0.3]                  # 1/5/15-min load when the run began
      },
      "forward_s": 0.0712,                          # median time of a whole forward
      "layers": [                                   # in net order, Split layers included
        {"name": "conv1", "type": "Convolution", "bottoms": ["data"], "tops": ["conv1"],
         "forward_s": 0.0123}                       # median over the repeats, seconds
      ],
      "blobs": {                                    # every blob: top shape and bytes (float32)
        "conv1": {"shape": [100, 32, 32, 32], "bytes": 13107200}
      },
      "wire": {                                     # this machine's own CPU cost of a frame
        "send_fixed_s": 3e-05, "send_per_byte_s": 4e-10,   # encode + send (wall seconds)
        "recv_fixed_s": 4e-05, "recv_per_byte_s": 5e-10,   # receive + decode
        "cpu_to_wall": 1.0, "checksum": "xxh3", "method": "...", "samples": [...]
      }
    }

Times are the median over ``repeats`` timed forwards after ``warmup`` untimed ones
(JIT compilation and first allocations are not timed). A blob's bytes are its
element count times 4 (every blob is float32). Input layers get random data;
Data layers read their source (wrapping around at its end). The "wire" object
is measured and documented in :mod:`tinycaffe.plan.wirecost`; a profile
without one (format ``tinycaffe-profile/1``, written before it existed, or
``"wire": null`` from ``profile --no-wire-cost``) loads with wire costs of 0,
and the planner's header says so.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PlanError
from .wirecost import NOT_MEASURED, WireCost, measure_wire_cost, wire_cost_from_dict

FORMAT = "tinycaffe-profile/2"
#: Formats still read: /1 has no "wire" object (its wire costs are taken as 0).
READABLE_FORMATS = ("tinycaffe-profile/1", FORMAT)

# Layer types whose first dimension is the batch, and where they keep it.
_BATCH_PARAMS = {
    "Data": "data_param",
    "HDF5Data": "hdf5_data_param",
    "MemoryData": "memory_data_param",
    "ImageData": "image_data_param",
    "WindowData": "window_data_param",
}


@dataclass
class Profile:
    """A parsed profile: what the planner needs from one machine."""

    net: str
    phase: str
    batch: int
    layer_times: dict[str, float]
    blob_shapes: dict[str, tuple[int, ...]]
    machine: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    path: str = "<profile>"
    doc: dict[str, Any] = field(default_factory=dict)
    wire: WireCost = NOT_MEASURED

    def blob_elements(self, name: str) -> int:
        return int(np.prod(self.blob_shapes[name], dtype=np.int64))

    def summary(self) -> str:
        """One line naming the machine, for reports."""
        m = self.machine
        cpu = m.get("cpu") or "unknown cpu"
        w = self.wire
        wire = (f"wire {w.send_fixed_s * 1e3:.3g} ms + {w.send_per_byte_s * 1e9:.3g} ns/B sending, "
                f"{w.recv_fixed_s * 1e3:.3g} ms + {w.recv_per_byte_s * 1e9:.3g} ns/B receiving"
                if w is not NOT_MEASURED else "wire costs not measured (charged 0)")
        return (f"{self.path}: {cpu}, {m.get('threads', '?')} thread(s) of {m.get('cores', '?')} core(s), "
                f"kernels {m.get('kernels', '?')}, batch {self.batch}; {wire}")


# -- reading and writing --------------------------------------------------------
def _need(doc: dict, key: str, kind, where: str):
    if key not in doc:
        raise PlanError(f"{where}: missing field '{key}'")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise PlanError(f"{where}: field '{key}' should be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _time(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise PlanError(f"{where}: forward_s must be a finite number >= 0, got {value!r}")
    return float(value)


def profile_from_dict(doc: Any, path: str = "<profile>") -> Profile:
    """Validate a profile document (see the module docstring) and parse it."""
    if not isinstance(doc, dict):
        raise PlanError(f"{path}: a profile is a JSON object, got {type(doc).__name__}")
    fmt = doc.get("format")
    if fmt not in READABLE_FORMATS:
        raise PlanError(f"{path}: not a tinycaffe profile (format {fmt!r}, expected one of "
                        f"{', '.join(map(repr, READABLE_FORMATS))})")
    batch = _need(doc, "batch", int, path)
    if batch <= 0:
        raise PlanError(f"{path}: batch must be positive, got {batch}")
    times: dict[str, float] = {}
    for i, entry in enumerate(_need(doc, "layers", list, path)):
        where = f"{path}: layers[{i}]"
        if not isinstance(entry, dict):
            raise PlanError(f"{where}: expected an object")
        name = _need(entry, "name", str, where)
        times[name] = _time(entry.get("forward_s"), f"{where} ('{name}')")
    shapes: dict[str, tuple[int, ...]] = {}
    for name, entry in _need(doc, "blobs", dict, path).items():
        where = f"{path}: blobs['{name}']"
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                   for d in shape):
            raise PlanError(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
        shapes[name] = tuple(shape)
    machine = doc.get("machine") or {}
    if not isinstance(machine, dict):
        raise PlanError(f"{path}: machine must be an object")
    wire = NOT_MEASURED if doc.get("wire") is None else wire_cost_from_dict(doc["wire"], path)
    return Profile(
        net=str(doc.get("net", "")), phase=str(doc.get("phase", "test")), batch=batch,
        layer_times=times, blob_shapes=shapes, machine=machine, model=str(doc.get("model", "")),
        path=path, doc=doc, wire=wire,
    )


def read_profile(path: str | Path) -> Profile:
    """A profile from a JSON file; any problem is a PlanError naming the file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise PlanError(f"{p}: cannot read profile ({exc.strerror or exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    return profile_from_dict(doc, str(p))


def write_profile(doc: dict, path: str | Path) -> None:
    """Write a profile document (validated first, so a bad one never reaches disk)."""
    profile_from_dict(doc, str(path))
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


# -- measuring ------------------------------------------------------------------
def machine_info(device: str = "cpu") -> dict[str, Any]:
    """CPU model, usable cores, kernel threads and backend, library versions, load."""
    import tinycaffe

    from ..kernels import get_num_threads, implementation

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    kernels = "gpu" if device == "gpu" else implementation(np.zeros(1, np.float32)).__name__.rsplit(".", 1)[-1]
    kernels = kernels.replace("_kernels", "")
    blas = "unknown"
    try:
        import threadpoolctl

        libs = [l for l in threadpoolctl.threadpool_info() if l.get("user_api") == "blas"]
        if libs:
            l0 = libs[0]
            blas = f"{l0.get('internal_api')} {l0.get('version')} ({l0.get('architecture')})"
    except Exception:  # threadpoolctl missing or confused: the profile is still useful
        pass
    return {
        "cpu": cpu, "cores": cores, "threads": get_num_threads(), "kernels": kernels, "device": device,
        "blas": blas, "tinycaffe": tinycaffe.__version__, "python": platform.python_version(),
        "numpy": np.__version__,
        "loadavg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def with_batch(net_param, batch: int):
    """A copy of ``net_param`` whose input and data layers produce ``batch`` items."""
    out = type(net_param)()
    out.CopyFrom(net_param)
    for layer in out.layer:
        if layer.type == "Input":
            for shape in layer.input_param.shape:
                if shape.dim:
                    shape.dim[0] = batch
        elif layer.type == "DummyData":
            for shape in layer.dummy_data_param.shape:
                if shape.dim:
                    shape.dim[0] = batch
        elif layer.type in _BATCH_PARAMS:
            getattr(layer, _BATCH_PARAMS[layer.type]).batch_size = batch
    # Legacy top-level inputs (upgraded nets keep them as Input layers, but be safe).
    for shape in out.input_shape:
        if shape.dim:
            shape.dim[0] = batch
    return out


def measure_profile(
    model: str,
    *,
    batch: int,
    repeats: int = 10,
    warmup: int = 2,
    weights: str | None = None,
    phase: str = "test",
    device: str = "cpu",
    seed: int = 0,
    wire_cost: bool = True,
) -> dict[str, Any]:
    """Run ``model`` and return its profile document (see the module docstring).

    ``wire_cost``: also measure this machine's CPU cost of sending and
    receiving frames (:func:`tinycaffe.plan.wirecost.measure_wire_cost`).
    """
    from ..net import Net
    from ..net.build import load_net_param

    if batch <= 0 or repeats <= 0 or warmup < 0:
        raise PlanError(f"batch and repeats must be positive and warmup >= 0 (got {batch}, {repeats}, {warmup})")
    machine = machine_info(device)  # load average before our own run adds to it
    net = Net(with_batch(load_net_param(model), batch), weights=weights, phase=phase, device=device, seed=seed)
    try:
        net.let_data_wrap()
        rng = np.random.default_rng(seed)
        for name in net.inputs:
            blob = net.blobs[name]
            blob.data[...] = net.xp.asarray(rng.standard_normal(blob.shape, dtype=np.float32))
        for _ in range(warmup):
            net.forward()
        net.layer_times.clear()
        totals = [net.forward_timed() for _ in range(repeats)]
        layers = []
        for i, name in enumerate(net.layer_names):
            layers.append({
                "name": name, "type": net.layers[i].type,
                "bottoms": list(net.bottom_names[i]), "tops": list(net.top_names[i]),
                "forward_s": statistics.median(net.layer_times.get(name, [0.0])),
            })
        blobs = {
            name: {"shape": [int(d) for d in blob.shape], "bytes": 4 * int(np.prod(blob.shape, dtype=np.int64))}
            for name, blob in net.blobs.items()
        }
        name = net.name
    finally:
        net.close()
    return {
        "format": FORMAT, "model": str(model), "net": name, "phase": phase, "batch": batch,
        "weights": str(weights) if weights else None, "repeats": repeats, "warmup": warmup,
        "machine": machine, "forward_s": statistics.median(totals), "layers": layers, "blobs": blobs,
        "wire": measure_wire_cost() if wire_cost else None,
    }
