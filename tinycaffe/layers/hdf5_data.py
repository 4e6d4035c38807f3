"""HDF5Data: batches of rows read from HDF5 files, as Caffe's HDF5DataLayer.

``hdf5_data_param.source`` names a text file listing .h5 files, one per line
(blank lines skipped; relative names resolve against the current directory,
as in Caffe). Each top reads the dataset of the same name from each file;
all of a file's datasets must have the same first dimension (its rows). A
top has shape (batch_size, *dataset.shape[1:]), values as float32.

Rows are served in order, moving to the next file when one runs out and
back to the first after the last, so a batch may span files. With
``shuffle`` the file order is shuffled at setup and after each full pass,
and each file's rows are shuffled whenever it is loaded (with a single file:
reshuffled at each wrap), as Caffe does. Files are loaded whole, one at a
time.
"""
from __future__ import annotations


import numpy as np

from ..errors import DataError
from .base import Layer
from .registry import register

_INSTALL_HINT = "the HDF5Data layer needs h5py: pip install 'tinycaffe[hdf5]'"


@register("HDF5Data")
class HDF5DataLayer(Layer):
    min_bottoms = max_bottoms = 0
    min_tops = 1

    def _error(self, message: str) -> DataError:
        return DataError(f"layer '{self.name}' (type {self.type}): {message}")

    def setup(self, bottoms, tops):
        try:
            import h5py
        except ImportError:
            raise self._error(_INSTALL_HINT) from None
        self._h5py = h5py
        if self.param.HasField("transform_param"):
            self.bad_param("HDF5Data does not transform data; remove transform_param")
        p = self.param.hdf5_data_param
        if not p.source:
            self.bad_param("hdf5_data_param.source (a text file listing .h5 files) is required")
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            self.bad_param("hdf5_data_param.batch_size must be positive")
        self.shuffle = bool(p.shuffle)
        self.dataset_names = list(self.param.top)
        if len(self.dataset_names) != len(tops):
            self.bad_param("every top needs a name: it is the dataset read from each file")
        self.source = p.source
        try:
            with open(self.source, encoding="utf-8") as f:
                self.files = [line.strip() for line in f if line.strip()]
        except OSError as exc:
            raise self._error(f"cannot read the HDF5 file list {self.source}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise self._error(f"the HDF5 file list {self.source} is not a text file") from None
        if not self.files:
            raise self._error(f"the HDF5 file list {self.source} names no files")
        self.file_order = np.arange(len(self.files))
        if self.shuffle:
            self.rng.shuffle(self.file_order)
        self.current_file = 0
        self.row_shapes: list[tuple[int, ...]] | None = None
        self._load(self.files[self.file_order[0]])

    def _load(self, path: str) -> None:
        """Read every top's dataset from ``path``; checks shapes; resets the row cursor."""
        h5py = self._h5py
        arrays = []
        try:
            with h5py.File(path, "r") as f:
                for name in self.dataset_names:
                    if name not in f or not isinstance(f[name], h5py.Dataset):
                        raise self._error(f"{path}: no dataset named '{name}' (each top reads the "
                                          f"dataset of its own name; listed in {self.source})")
                    arrays.append(np.asarray(f[name][()], dtype=np.float32))
        except DataError:
            raise
        except FileNotFoundError:
            raise self._error(f"{path}: no such file (listed in {self.source})") from None
        except (OSError, ValueError, TypeError) as exc:
            raise self._error(f"{path}: cannot read as HDF5: {exc}") from None
        for name, a in zip(self.dataset_names, arrays):
            if a.ndim < 1:
                raise self._error(f"{path}: dataset '{name}' is a scalar; it needs at least one axis (rows)")
        rows = arrays[0].shape[0]
        for name, a in zip(self.dataset_names, arrays):
            if a.shape[0] != rows:
                detail = ", ".join(f"'{n}' {x.shape}" for n, x in zip(self.dataset_names, arrays))
                raise self._error(f"{path}: the datasets' first dimensions differ ({detail})")
        if rows == 0:
            raise self._error(f"{path}: the datasets have no rows")
        shapes = [a.shape[1:] for a in arrays]
        if self.row_shapes is None:
            self.row_shapes = shapes
        elif shapes != self.row_shapes:
            first = self.files[self.file_order[0]]
            raise self._error(f"{path}: row shapes {shapes} differ from {self.row_shapes} in {first}")
        self.arrays = arrays
        self.rows = rows
        self.row_order = np.arange(rows)
        if self.shuffle:
            self.rng.shuffle(self.row_order)
        self.current_row = 0

    def _advance(self) -> None:
        """The current file is used up: go on to the next (Caffe's order, wrapping)."""
        if len(self.files) > 1:
            self.current_file += 1
            if self.current_file == len(self.files):
                self.current_file = 0
                if self.shuffle:
                    self.rng.shuffle(self.file_order)
            self._load(self.files[self.file_order[self.current_file]])
        else:
            if self.shuffle:
                self.rng.shuffle(self.row_order)
            self.current_row = 0

    def reshape(self, bottoms, tops):
        for top, shape in zip(tops, self.row_shapes):
            top.reshape((self.batch_size, *shape))

    def forward(self, bottoms, tops):
        batches = [np.empty((self.batch_size, *s), dtype=np.float32) for s in self.row_shapes]
        filled = 0
        while filled < self.batch_size:
            if self.current_row == self.rows:
                self._advance()
            take = min(self.batch_size - filled, self.rows - self.current_row)
            rows = self.row_order[self.current_row:self.current_row + take]
            for out, a in zip(batches, self.arrays):
                out[filled:filled + take] = a[rows]
            filled += take
            self.current_row += take
        for top, batch in zip(tops, batches):
            top.data[...] = self.xp.asarray(batch)

    def backward(self, tops, propagate_down, bottoms):
        pass
