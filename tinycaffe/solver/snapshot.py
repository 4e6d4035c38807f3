"""Snapshot files: the learned net plus a SolverState, in Caffe's two formats.

BINARYPROTO: ``<prefix>_iter_N.caffemodel`` (a NetParameter with blobs) and
``<prefix>_iter_N.solverstate`` (a binary ``SolverState``: iter, learned_net,
one BlobProto per history array, current_step).

HDF5: ``<prefix>_iter_N.caffemodel.h5`` (``/data/<layer>/<i>``, and
``/diff/...`` with snapshot_diff) and ``<prefix>_iter_N.solverstate.h5``
(scalars ``iter``, ``current_step``, string ``learned_net``, group
``history`` with datasets ``0``, ``1``, ...). Restoring picks HDF5 when the
state file name ends in ``.h5``, as Caffe does.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from google.protobuf.message import DecodeError

from ..backend import asnumpy
from ..errors import FormatError
from ..proto import caffe_pb2
from ..proto.atomic import write_atomic
from ..proto.caffemodel import encode_blob
from ..proto.wire_format import len_header

_STATE_HISTORY = 3  # SolverState.history field number


@dataclass
class SolverStateData:
    """What a .solverstate holds, with history as float32 arrays."""

    iter: int
    learned_net: str
    current_step: int = 0
    history: list[np.ndarray] = field(default_factory=list)


def snapshot_filename(prefix: str, it: int, extension: str) -> str:
    """Caffe's SnapshotFilename: ``<prefix>_iter_<it><extension>``."""
    return f"{prefix}_iter_{it}{extension}"


# -- the learned net -------------------------------------------------------------
def write_model(net, path: str, hdf5: bool, with_diff: bool = False) -> None:
    """Write ``net``'s blobs (and their gradients with ``with_diff``) as a caffemodel."""
    if hdf5:
        _write_model_hdf5(net, path, with_diff)
    elif with_diff:
        _write_model_with_diff(net, path)
    else:
        net.save(path)


def _write_model_with_diff(net, path: str) -> None:
    # Rare (snapshot_diff): the plain protobuf route is fast enough here.
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net.param)
    layers = dict(zip(net.layer_names, net.layers))
    for lp in out.layer:
        lp.ClearField("blobs")
        for blob in getattr(layers.get(lp.name), "blobs", []):
            bp = lp.blobs.add()
            bp.shape.dim.extend(blob.shape)
            bp.data.extend(asnumpy(blob.data).reshape(-1).tolist())
            bp.diff.extend(asnumpy(blob.diff).reshape(-1).tolist())
    _write_bytes(path, [out.SerializeToString()])


def _h5py(path: str):
    try:
        import h5py
    except ImportError:
        raise FormatError(f"{path}: HDF5 snapshots need h5py: pip install 'tinycaffe[hdf5]'") from None
    return h5py


def _write_model_hdf5(net, path: str, with_diff: bool) -> None:
    h5py = _h5py(path)
    try:
        with h5py.File(path, "w") as f:
            groups = [("data", "data")] + ([("diff", "diff")] if with_diff else [])
            for group_name, attr in groups:
                top = f.create_group(group_name)
                for name, layer in zip(net.layer_names, net.layers):
                    g = top.create_group(name)  # Caffe writes a group for every layer
                    for i, blob in enumerate(layer.blobs):
                        g.create_dataset(str(i), data=asnumpy(getattr(blob, attr)))
    except OSError as exc:
        raise FormatError(f"{path}: cannot write: {exc}") from None


# -- the solver state --------------------------------------------------------------
def write_state(path: str, state: SolverStateData, hdf5: bool) -> None:
    """Write a .solverstate (binary SolverState) or .solverstate.h5."""
    if hdf5:
        _write_state_hdf5(path, state)
        return
    head = caffe_pb2.SolverState(iter=state.iter, learned_net=state.learned_net,
                                 current_step=state.current_step)
    pieces: list[Any] = [head.SerializeToString()]
    for h in state.history:  # appended by hand: no float-by-float protobuf copy
        blob = encode_blob(asnumpy(h))
        pieces += [len_header(_STATE_HISTORY, len(blob)), blob]
    _write_bytes(path, pieces)


def _write_state_hdf5(path: str, state: SolverStateData) -> None:
    h5py = _h5py(path)
    try:
        with h5py.File(path, "w") as f:
            f["iter"] = np.int32(state.iter)
            f["learned_net"] = np.bytes_(state.learned_net.encode())
            f["current_step"] = np.int32(state.current_step)
            g = f.create_group("history")
            for i, h in enumerate(state.history):
                g.create_dataset(str(i), data=asnumpy(h))
    except OSError as exc:
        raise FormatError(f"{path}: cannot write: {exc}") from None


def read_state(path: str) -> SolverStateData:
    """Read a solver state written by tinycaffe or Caffe (format from the ``.h5`` suffix)."""
    if not os.path.isfile(path):
        raise FormatError(f"{path}: no such solver state file")
    if path.endswith(".h5"):
        return _read_state_hdf5(path)
    state = caffe_pb2.SolverState()
    try:
        state.ParseFromString(Path(path).read_bytes())
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise FormatError(f"{path}: not a valid binary solver state: {exc}") from None
    except OSError as exc:
        raise FormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    history = [_blob_array(b, f"{path}: history {i}") for i, b in enumerate(state.history)]
    return SolverStateData(state.iter, state.learned_net, state.current_step, history)


def _blob_array(blob: caffe_pb2.BlobProto, where: str) -> np.ndarray:
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        shape: Sequence[int] = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(blob.shape.dim)
    values = np.asarray(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float32)
    if values.size != int(np.prod(shape, dtype=np.int64)):
        raise FormatError(f"{where}: {values.size} values for shape {tuple(shape)}")
    return values.reshape(shape)


def _read_state_hdf5(path: str) -> SolverStateData:
    h5py = _h5py(path)
    try:
        with h5py.File(path, "r") as f:
            learned = f["learned_net"][()] if "learned_net" in f else b""
            learned = learned.decode() if isinstance(learned, bytes) else str(learned)
            hist = f["history"]
            n = len(hist)
            history = [np.asarray(hist[str(i)][()], dtype=np.float32) for i in range(n)]
            return SolverStateData(int(np.asarray(f["iter"][()]).reshape(-1)[0]), learned,
                                   int(np.asarray(f["current_step"][()]).reshape(-1)[0]), history)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise FormatError(f"{path}: not a valid HDF5 solver state: {exc}") from None


def _write_bytes(path: str, pieces: list[Any]) -> None:
    try:
        write_atomic(path, pieces)
    except OSError as exc:
        raise FormatError(f"{path}: cannot write: {exc.strerror or exc}") from None
