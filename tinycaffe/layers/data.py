"""Data: batches of Datum records from an LMDB or LevelDB, transformed as Caffe's data layer does.

Like Caffe, the next batch is read and transformed in a background thread
while the net computes on the current one. Encoded (JPEG/PNG) datums are
decoded as Caffe decodes them (``transform_param`` ``force_color`` /
``force_gray``); every record must decode to the first record's size.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..errors import DataError
from ..proto import caffe_pb2
from .base import Layer
from .registry import register

LEVELDB, LMDB = caffe_pb2.DataParameter.LEVELDB, caffe_pb2.DataParameter.LMDB


@register("Data")
class Data(Layer):
    min_bottoms = max_bottoms = 0
    min_tops, max_tops = 1, 2
    # Scoring must not count an image twice in one pass; timing does not care.
    wrap_in_test = False

    def setup(self, bottoms, tops):
        from ..data.db import open_reader
        from ..data.paths import resolve_data_path
        from ..data.transform import DataTransformer

        p = self.param.data_param
        if p.backend not in (LEVELDB, LMDB):
            self.bad_param(f"unknown data_param.backend {p.backend}: use LMDB or LEVELDB")
        if not p.source:
            self.bad_param("data_param.source is required")
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            self.bad_param("data_param.batch_size must be positive")
        try:
            self.transformer = DataTransformer(self.param.transform_param, self.phase,
                                               seed=int(self.rng.integers(2**31)))
            self.reader = open_reader(resolve_data_path(p.source), "lmdb" if p.backend == LMDB else "leveldb",
                                      self.transformer.decode_mode)
        except DataError as exc:
            raise DataError(f"layer '{self.name}': {exc}") from None
        if p.rand_skip:
            skip = int(self.rng.integers(p.rand_skip))
            if skip:
                self.reader.read_batch(skip)
        self.out_chw = self.transformer.output_shape(self.reader.shape)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"data-{self.name}")
        self._lock = threading.Lock()
        self._next: Future | None = None
        self._records_read = 0

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            n = len(self.reader)
            start = self._records_read % n
            if self.phase == "test" and not self.wrap_in_test and start + self.batch_size > n:
                # Caffe would wrap to the first record inside this batch, scoring
                # some images twice in one pass: refuse instead.
                raise DataError(
                    f"layer '{self.name}': batch {self._records_read // self.batch_size} would run past "
                    f"the end of the {n} records of {self.reader.path} and wrap to the start; in the "
                    f"TEST phase the batch size ({self.batch_size}) must divide the number of records, "
                    "or run fewer iterations"
                )
            self._records_read += self.batch_size
            images, labels = self.reader.read_batch(self.batch_size)
            return self.transformer(images), labels.astype(np.float32)

    def reshape(self, bottoms, tops):
        tops[0].reshape((self.batch_size, *self.out_chw))
        if len(tops) == 2:
            tops[1].reshape((self.batch_size,))

    def forward(self, bottoms, tops):
        future = self._next or self._pool.submit(self._load)
        images, labels = future.result()
        self._next = self._pool.submit(self._load)  # prefetch while the net runs
        tops[0].data[...] = self.xp.asarray(images)
        if len(tops) == 2:
            tops[1].data[...] = self.xp.asarray(labels)

    def backward(self, tops, propagate_down, bottoms):
        pass

    def close(self, abort: bool = False) -> None:
        """Stop the prefetch thread and release the LMDB."""
        if self._next is not None:
            self._next.cancel()
        self._pool.shutdown(wait=True)
        self.reader.close()
