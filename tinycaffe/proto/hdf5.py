"""Reading Caffe's HDF5 weights files (.caffemodel.h5).

Caffe (Net::ToHDF5) writes group ``/data`` holding one group per layer, and in
each layer group one dataset per parameter blob named "0", "1", ...  Layers
without parameters get an empty group.

h5py lists group members alphabetically unless the file tracked creation
order, which Caffe's files do not.  Caffe's files use old-style groups,
whose member names sit in a "local heap" in the order they were added, so
``_heap_order`` reads that heap to give the layers back in the order Caffe
wrote them; on any surprise it gives up and h5py's order is kept.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Union

import numpy as np

from tinycaffe.errors import FormatError
from tinycaffe.proto.caffemodel import StoredBlob

PathLike = Union[str, "os.PathLike[str]"]

_INSTALL_HINT = "reading HDF5 weights needs h5py: pip install 'tinycaffe[hdf5]'"


def read_hdf5_weights(path: PathLike) -> dict[str, list[StoredBlob]]:
    """Read every layer's parameter blobs from a Caffe HDF5 weights file.

    Returns {layer name: [StoredBlob, ...]} (``legacy`` is always False: HDF5
    datasets carry their real shape), layers without blobs left out.  Raises
    FormatError naming the file for anything unreadable, and when h5py is not
    installed.
    """
    name = os.fspath(path)
    try:
        import h5py
    except ImportError:
        raise FormatError(f"{name}: {_INSTALL_HINT}") from None
    if not os.path.isfile(name):
        raise FormatError(f"{name}: cannot read: no such file")
    try:
        with h5py.File(name, "r") as f:
            if "data" not in f or not isinstance(f["data"], h5py.Group):
                raise FormatError(f"{name}: no /data group, not a Caffe HDF5 weights file")
            data = f["data"]
            order = _heap_order(name, data, h5py) or list(data)
            weights: dict[str, list[StoredBlob]] = {}
            for layer in order:
                group = data[layer]
                if not isinstance(group, h5py.Group):
                    raise FormatError(f"{name}: /data/{layer} is not a group")
                blobs = _read_layer(name, layer, group, h5py)
                if blobs:
                    weights[layer] = blobs
            return weights
    except FormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise FormatError(f"{name}: cannot read HDF5 weights: {exc}") from None


def _read_layer(source: str, layer: str, group: Any, h5py: Any) -> list[StoredBlob]:
    members = list(group)
    # Datasets are numbered; sort numerically so "10" comes after "2".
    expected = [str(i) for i in range(len(members))]
    if sorted(members, key=lambda m: (len(m), m)) != expected:
        raise FormatError(f"{source}: layer {layer!r}: blob datasets {members} are not named 0..{len(members) - 1}")
    blobs = []
    for index in expected:
        ds = group[index]
        if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiu":
            raise FormatError(f"{source}: layer {layer!r} blob {index}: not a numeric dataset")
        blobs.append(StoredBlob(np.asarray(ds[()], dtype=np.float32).reshape(ds.shape), False))
    return blobs


def _heap_order(path: str, group: Any, h5py: Any) -> list[str] | None:
    """Members of ``group`` in insertion order, or None if it can't be told.

    Follows the HDF5 format: the group's object header (version 1) holds a
    symbol-table message (type 0x11) pointing at a local heap ("HEAP"), whose
    data segment stores the member names NUL-terminated, 8-byte aligned, in
    the order they were inserted.
    """
    try:
        names = list(group)
        if len(names) < 2:
            return names
        if group.id.get_create_plist().get_link_creation_order():
            return None  # h5py already iterates in creation order
        addr = h5py.h5o.get_info(group.id).addr
        with open(path, "rb") as f:
            superblock = _read_at(f, 0, 16)
            # Superblock versions 0/1 with 8-byte offsets and lengths only.
            if superblock[8] not in (0, 1) or superblock[13] != 8 or superblock[14] != 8:
                return None
            header = _read_at(f, addr, 16)
            if header[0] != 1:
                return None
            count, size = struct.unpack_from("<H4xI", header, 2)
            messages = _read_at(f, addr + 16, size)
            heap_addr = None
            pos = 0
            for _ in range(count):
                if pos + 8 > len(messages):
                    break
                kind, length = struct.unpack_from("<HH", messages, pos)
                if kind == 0x11 and length >= 16:
                    heap_addr = struct.unpack_from("<QQ", messages, pos + 8)[1]
                    break
                pos += 8 + length
            if heap_addr is None:
                return None
            heap = _read_at(f, heap_addr, 32)
            if heap[:4] != b"HEAP" or heap[4] != 0:
                return None
            seg_size, free_at, seg_addr = struct.unpack_from("<QQQ", heap, 8)
            segment = _read_at(f, seg_addr, min(seg_size, free_at))
        offset_of: dict[str, int] = {}
        pos = 0
        while pos < len(segment):
            stop = segment.find(b"\0", pos)
            if stop < 0:
                break
            if stop > pos:
                offset_of.setdefault(segment[pos:stop].decode("utf-8", "replace"), pos)
            pos = (stop + 8) // 8 * 8  # next 8-byte boundary after the NUL
        if not all(n in offset_of for n in names):
            return None
        return sorted(names, key=offset_of.__getitem__)
    except Exception:  # noqa: BLE001 - any surprise just means "unknown order"
        return None


def _read_at(f: Any, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise EOFError
    return data
