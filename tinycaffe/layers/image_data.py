"""ImageData: batches of image files named in a list file, as Caffe's ImageData layer reads them.

``image_data_param``: ``source`` (a list file of ``path label`` lines),
``root_folder`` (prepended to each path as a plain string, as Caffe does),
``batch_size``, ``new_height``/``new_width`` (resize every image, both or
neither), ``is_color`` (false: 1 gray channel), ``shuffle`` (shuffle the list
at setup and at every pass, from the net's seeded generator), ``rand_skip``
(skip a random number of first images). ``transform_param`` applies as for
the Data layer. Images are decoded with Pillow into Caffe's BGR order and
resized as ``cv::resize`` does (``tinycaffe.data.image``).

Every image of a run must come out at the first image's size: set
new_height/new_width for a folder of mixed sizes (Caffe itself allows mixed
sizes only with batch_size 1, by reshaping the net per batch, which this layer
does not). Like Data, the next batch is read in a background thread, and in
the TEST phase a batch that would wrap past the end of the list is refused.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..errors import DataError
from .base import Layer
from .registry import register


@register("ImageData")
class ImageData(Layer):
    min_bottoms = max_bottoms = 0
    min_tops = max_tops = 2
    # Scoring must not count an image twice in one pass; timing does not care.
    wrap_in_test = False

    def setup(self, bottoms, tops):
        from ..data.image_list import read_image_list
        from ..data.paths import resolve_data_path
        from ..data.transform import DataTransformer

        p = self.param.image_data_param
        if not p.source:
            self.bad_param("image_data_param.source (the list file) is required")
        self.new_height, self.new_width = int(p.new_height), int(p.new_width)
        if (self.new_height > 0) != (self.new_width > 0):
            self.bad_param("set new_height and new_width together (or neither)")
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            self.bad_param("image_data_param.batch_size must be positive")
        self.is_color = bool(p.is_color)
        self.root_folder = p.root_folder
        self.source = resolve_data_path(p.source)
        self._shuffle = bool(p.shuffle)
        try:
            self.lines = read_image_list(self.source)
            self.transformer = DataTransformer(self.param.transform_param, self.phase,
                                               seed=int(self.rng.integers(2**31)))
        except DataError as exc:
            raise DataError(f"layer '{self.name}': {exc}") from None
        # Caffe seeds a separate generator for shuffling; ours comes from the net's.
        self._shuffle_rng = np.random.default_rng(int(self.rng.integers(2**31)))
        if self._shuffle:
            self._reshuffle()
        self._pos = 0
        if p.rand_skip:
            skip = int(self.rng.integers(p.rand_skip))
            if skip >= len(self.lines):
                self.bad_param(f"rand_skip drew {skip}, but {self.source} lists only "
                               f"{len(self.lines)} images")
            self._pos = skip
        first = self._read(self._pos)
        self.image_chw = first.shape
        try:
            self.out_chw = self.transformer.output_shape(self.image_chw)
            self.transformer(first[None])  # a mean_file of the wrong size fails here, not mid-run
        except DataError as exc:
            raise DataError(f"layer '{self.name}': {exc}") from None
        self._images = np.empty((self.batch_size, *self.image_chw), dtype=np.uint8)
        self._records_read = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"imagedata-{self.name}")
        self._lock = threading.Lock()
        self._next: Future | None = None

    def _reshuffle(self) -> None:
        order = self._shuffle_rng.permutation(len(self.lines))
        self.lines = [self.lines[i] for i in order]

    def _read(self, index: int) -> np.ndarray:
        """Image ``index`` of the list as uint8 (C, H, W); errors name the list file and line."""
        from ..data.image import hwc_to_chw, read_image
        from ..data.paths import resolve_data_path

        entry = self.lines[index]
        try:
            img = read_image(resolve_data_path(self.root_folder + entry.name),
                             self.new_height, self.new_width, self.is_color)
        except DataError as exc:
            raise DataError(f"layer '{self.name}': {self.source} line {entry.line}: {exc}") from None
        return hwc_to_chw(img)

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            n = len(self.lines)
            if (self.phase == "test" and not self.wrap_in_test
                    and self._records_read % n + self.batch_size > n):
                raise DataError(
                    f"layer '{self.name}': batch {self._records_read // self.batch_size} would run "
                    f"past the end of the {n} images of {self.source} and wrap to the start; in the "
                    f"TEST phase the batch size ({self.batch_size}) must divide the number of "
                    "images, or run fewer iterations")
            self._records_read += self.batch_size
            images = self._images
            labels = np.empty(self.batch_size, dtype=np.float32)
            for i in range(self.batch_size):
                image = self._read(self._pos)
                entry = self.lines[self._pos]
                if image.shape != self.image_chw:
                    raise DataError(
                        f"layer '{self.name}': {self.source} line {entry.line}: image "
                        f"{self.root_folder + entry.name} is {image.shape[1]}x{image.shape[2]} with "
                        f"{image.shape[0]} channel(s), but the first image is {self.image_chw[1]}x"
                        f"{self.image_chw[2]} with {self.image_chw[0]}: set new_height and new_width")
                images[i] = image
                labels[i] = entry.label
                self._pos += 1
                if self._pos >= n:  # Caffe starts a new pass, reshuffled when asked to
                    self._pos = 0
                    if self._shuffle:
                        self._reshuffle()
            return self.transformer(images), labels

    def reshape(self, bottoms, tops):
        tops[0].reshape((self.batch_size, *self.out_chw))
        tops[1].reshape((self.batch_size,))

    def forward(self, bottoms, tops):
        future = self._next or self._pool.submit(self._load)
        images, labels = future.result()
        self._next = self._pool.submit(self._load)  # prefetch while the net runs
        tops[0].data[...] = self.xp.asarray(images)
        tops[1].data[...] = self.xp.asarray(labels)

    def backward(self, tops, propagate_down, bottoms):
        pass

    def close(self, abort: bool = False) -> None:
        """Stop the prefetch thread."""
        if self._next is not None:
            self._next.cancel()
        self._pool.shutdown(wait=True)
