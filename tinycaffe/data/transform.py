"""Caffe's DataTransformer, vectorised over a batch.

Per image Caffe computes ``out = (x - mean) * scale`` in float32, after an
optional crop (centre crop in TEST, random offset in TRAIN) and an optional
horizontal mirror. The mean is indexed at the *source* pixel, so a crop reads
the mean at the crop offset and a mirror flips image and mean together.

Note: Caffe mirrors in both phases when ``mirror: true`` (its transformer
never checks the phase for mirroring); only the crop offset depends on it.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tinycaffe.errors import DataError, TinyCaffeError
from tinycaffe.proto import caffe_pb2
from tinycaffe.proto.binaryproto import read_blob


class DataTransformer:
    """Apply a ``TransformationParameter`` to (N, C, H, W) batches.

    ``phase`` is "TRAIN" or "TEST"; ``seed`` seeds the random crops/mirrors
    (``None``: fresh entropy each run, like Caffe's default).
    """

    def __init__(self, param: caffe_pb2.TransformationParameter, phase: str,
                 seed: int | None = None) -> None:
        phase = str(phase).upper()
        if phase not in ("TRAIN", "TEST"):
            raise DataError(f"transform: phase must be TRAIN or TEST, got {phase!r}")
        self.phase = phase
        self.scale = np.float32(param.scale)
        self.mirror = bool(param.mirror)
        self.crop_size = int(param.crop_size)
        if param.force_color and param.force_gray:
            raise DataError("transform: cannot set both force_color and force_gray")
        # How an encoded (JPEG/PNG) datum is decoded: Caffe keeps the file's own
        # channels unless force_color / force_gray says otherwise.
        self.decode_mode = "color" if param.force_color else "gray" if param.force_gray else "unchanged"
        self._rng = np.random.default_rng(seed)
        self._mean_file: np.ndarray | None = None
        self._mean_values: np.ndarray | None = None
        has_mean_file = param.HasField("mean_file")
        if has_mean_file and len(param.mean_value) > 0:
            raise DataError("transform: cannot specify mean_file and mean_value at the same time")
        if has_mean_file:
            self._mean_file = self._load_mean(param.mean_file)
        elif len(param.mean_value) > 0:
            self._mean_values = np.asarray(param.mean_value, dtype=np.float32)

    @staticmethod
    def _load_mean(path: str) -> np.ndarray:
        from tinycaffe.data.paths import resolve_data_path

        path = str(resolve_data_path(path))
        try:
            mean = np.asarray(read_blob(path), dtype=np.float32)
        except TinyCaffeError as e:
            raise DataError(f"{path}: cannot read mean_file: {e}") from e
        except OSError as e:
            raise DataError(f"{path}: cannot read mean_file: {e.strerror or e}") from e
        # Caffe reads the mean as a 4-d (num, C, H, W) blob and uses image 0.
        if mean.ndim == 4 and mean.shape[0] == 1:
            mean = mean[0]
        if mean.ndim != 3:
            raise DataError(f"{path}: mean_file blob has shape {mean.shape}, expected (1, C, H, W)")
        return mean

    def output_shape(self, input_chw: tuple[int, int, int]) -> tuple[int, int, int]:
        """(C, h, w) of the transformed image for a (C, H, W) input."""
        c, h, w = (int(s) for s in input_chw)
        if self.crop_size:
            if self.crop_size > h or self.crop_size > w:
                raise DataError(
                    f"transform: crop_size {self.crop_size} is larger than the image {h}x{w}")
            return c, self.crop_size, self.crop_size
        return c, h, w

    def _mean_for(self, chw: tuple[int, int, int]) -> np.ndarray | None:
        """The mean as a float32 array broadcastable against one (C, H, W) image."""
        c = chw[0]
        if self._mean_file is not None:
            if self._mean_file.shape != chw:
                raise DataError(
                    f"transform: mean_file shape (1, {', '.join(map(str, self._mean_file.shape))}) "
                    f"does not match the datum shape {chw}")
            return self._mean_file
        if self._mean_values is not None:
            if len(self._mean_values) not in (1, c):
                raise DataError(
                    f"transform: give 1 mean_value or one per channel ({c}), "
                    f"got {len(self._mean_values)}")
            return np.broadcast_to(self._mean_values, (c,)).reshape(c, 1, 1)
        return None

    def __call__(self, batch: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Transform a (N, C, H, W) uint8/float batch into a float32 (N, C, h, w) array:
        ``out`` when given (C-contiguous float32 of that shape, e.g. a Data layer's top),
        else a new one."""
        batch = np.asarray(batch)
        if batch.ndim != 4:
            raise DataError(f"transform: expected a (N, C, H, W) batch, got shape {batch.shape}")
        n, c, h, w = batch.shape
        _, ch, cw = self.output_shape((c, h, w))
        mean = self._mean_for((c, h, w))
        # TEST takes no mirror, so that scores are repeatable (real Caffe would
        # still flip at random if a TEST net set mirror: true).
        if self.mirror and self.phase == "TRAIN":
            flip = self._rng.integers(0, 2, size=n).astype(bool)
        else:
            flip = np.zeros(n, dtype=bool)
        if self.crop_size and self.phase == "TRAIN":
            # Caffe draws offsets in [0, H - crop]; both ends included.
            h_off = self._rng.integers(0, h - ch + 1, size=n)
            w_off = self._rng.integers(0, w - cw + 1, size=n)
        else:
            h_off = np.full(n, (h - ch) // 2)
            w_off = np.full(n, (w - cw) // 2)

        shape = (n, c, ch, cw)
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise DataError(f"transform: out must be a C-contiguous float32 {shape} array, "
                            f"got {out.shape} {out.dtype.name}")
        if n == 0:
            return out
        # Convert into ``out``, then subtract and scale in place: a subtract that
        # casts the uint8 pixels itself ran 1.3x slower (buffered casting).
        if (h_off == h_off[0]).all() and (w_off == w_off[0]).all():
            # Same window for every image: plain slicing.
            win = np.s_[:, h_off[0]:h_off[0] + ch, w_off[0]:w_off[0] + cw]
            np.copyto(out, batch[(slice(None), *win)], casting="unsafe")
            if mean is not None:
                out -= np.broadcast_to(mean, (c, h, w))[win]
        else:
            # Per-image windows: gather each image's crop from a strided view of
            # all possible crops; the mean is gathered at the same offsets.
            views = sliding_window_view(batch, (ch, cw), axis=(2, 3))
            np.copyto(out, views[np.arange(n), :, h_off, w_off], casting="unsafe")  # (N, C, ch, cw)
            if mean is not None:
                mean_views = sliding_window_view(np.broadcast_to(mean, (c, h, w)), (ch, cw),
                                                 axis=(1, 2))
                out -= mean_views[:, h_off, w_off].transpose(1, 0, 2, 3)
        # Mirroring after the subtraction flips image and mean together, which is
        # Caffe's "mean at the source pixel" rule.
        if flip.any():
            out[flip] = out[flip, :, :, ::-1]
        if self.scale != 1:
            out *= self.scale
        return out
