"""What every database of Datum records shares: cycling through it in key order, batch by batch.

Caffe's data layer walks a database (LMDB or LevelDB) with a cursor in key
order and, when it falls off the end, seeks back to the first record, so an
epoch boundary can fall in the middle of a batch. ``DatumReader`` does that
over any backend that can say "current key/value" and "go to the next record,
or back to the first"; ``LMDBReader`` and ``LevelDBReader`` are the two.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import numpy as np
from google.protobuf.message import DecodeError

from tinycaffe.data.datum import datum_to_array
from tinycaffe.errors import DataError
from tinycaffe.proto import caffe_pb2


def key_text(key: bytes) -> str:
    """A database key for error messages (non-ASCII bytes escaped)."""
    return key.decode("ascii", errors="backslashreplace")


class DatumReader:
    """Cycle through the Datum records of a database, in key order.

    Subclasses open the database and implement ``_current`` (key, value of
    the cursor's record), ``_advance`` (next record, wrapping to the first)
    and ``_close``; they call ``_start`` once the cursor is on the first
    record. ``decode`` says how encoded (JPEG/PNG) datums are decoded:
    "unchanged", "color" or "gray" (see ``datum_to_array``).
    """

    backend = ""

    def __init__(self, path: str | Path, decode: str = "unchanged") -> None:
        self.path = Path(path)
        self.decode = decode
        self._len = 0
        self._open = False
        self._images: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    # -- for subclasses ----------------------------------------------------------
    def _current(self) -> tuple[bytes, bytes]:
        raise NotImplementedError

    def _advance(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _start(self, n_records: int) -> None:
        """Record the size and the first datum's shape; the cursor is on the first record."""
        self._open = True
        self._len = n_records
        if n_records == 0:
            self.close()
            raise DataError(f"{self.path}: {self.backend} holds no records")
        first, _ = self._parse_current()
        self._shape: tuple[int, int, int] = tuple(first.shape)  # type: ignore[assignment]
        self._dtype = first.dtype

    def _parse_current(self) -> tuple[np.ndarray, int]:
        key, value = self._current()
        where = f"{self.path} key {key_text(key)!r}"
        # A new message per record: protobuf's upb backend keeps what a message
        # parses in that message's arena until the message dies, so one reused
        # Datum grew by every record read (0.3 MB per CIFAR batch, without end).
        datum = caffe_pb2.Datum()
        try:
            datum.ParseFromString(value)
        except DecodeError as e:
            raise DataError(f"{where}: not a Datum record: {e}") from e
        return datum_to_array(datum, where, self.decode)

    # -- public ------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of records in the database."""
        return self._len

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the first datum; every record must match it."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """uint8 for ``data`` (and encoded) datums, float32 for ``float_data`` datums."""
        return self._dtype

    def read_batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Read the next ``n`` records, wrapping to the first record at the end.

        Returns ``(images (n, C, H, W), labels (n,) int64)``. The arrays are
        buffers owned by the reader and reused by the next call with the same
        ``n``: copy them if you need them after that.
        """
        if not self._open:
            raise DataError(f"{self.path}: reader is closed")
        if n <= 0:
            raise DataError(f"{self.path}: batch size must be positive, got {n}")
        if self._images is None or len(self._images) != n:
            self._images = np.empty((n, *self._shape), dtype=self._dtype)
            self._labels = np.empty(n, dtype=np.int64)
        images, labels = self._images, self._labels
        assert labels is not None
        for i in range(n):
            image, labels[i] = self._parse_current()
            if image.shape != self._shape or image.dtype != self._dtype:
                key = key_text(self._current()[0])
                raise DataError(
                    f"{self.path} key {key!r}: datum is {image.dtype} {image.shape}, "
                    f"but the first record is {self._dtype} {self._shape} (every record "
                    "must have the first one's size: resize the images when converting)")
            images[i] = image
            self._advance()
        return images, labels

    def close(self) -> None:
        """Release the database (idempotent)."""
        if getattr(self, "_open", False):
            self._open = False
            self._close()

    def __enter__(self) -> DatumReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
