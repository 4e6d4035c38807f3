"""pycaffe's ``caffe.Classifier``: a TEST-phase Net that classifies H x W x K images."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from . import io as caffe_io
from .errors import ShapeError
from .net import Net


class Classifier(Net):
    """``Classifier(model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
    raw_scale=None, channel_swap=None)``.

    Images (as ``caffe.io.load_image`` gives them) are resized to
    ``image_dims`` (default: the net's input size), cropped to the net's
    input size (the centre, or ten crops with ``oversample``), prepared by
    ``self.transformer`` (transpose to K x H x W, then the options given)
    and run through the net's first input a batch at a time.
    """

    def __init__(self, model_file: str | Path, pretrained_file: str | Path, image_dims: Sequence[int] | None = None,
                 mean: np.ndarray | None = None, input_scale: float | None = None,
                 raw_scale: float | None = None, channel_swap: Sequence[int] | None = None, **net_kwargs):
        super().__init__(model_file, pretrained_file, "test", **net_kwargs)
        if not self.inputs:
            raise ShapeError(f"Classifier: net '{self.name}' has no Input layer to feed images to")
        in_ = self.inputs[0]
        self.transformer = caffe_io.Transformer({in_: self.blobs[in_].data.shape})
        self.transformer.set_transpose(in_, (2, 0, 1))
        if mean is not None:
            self.transformer.set_mean(in_, mean)
        if input_scale is not None:
            self.transformer.set_input_scale(in_, input_scale)
        if raw_scale is not None:
            self.transformer.set_raw_scale(in_, raw_scale)
        if channel_swap is not None:
            self.transformer.set_channel_swap(in_, channel_swap)
        self.crop_dims = np.array(self.blobs[in_].data.shape[2:])
        self.image_dims = np.array(image_dims if image_dims is not None and len(image_dims) else self.crop_dims)

    def predict(self, inputs: Sequence[np.ndarray], oversample: bool = True) -> np.ndarray:
        """(N x classes) scores of the first output for N H x W x K images.

        With ``oversample`` each score is the mean over the four corner and
        centre crops and their mirrors; otherwise the centre crop alone.
        """
        if len(inputs) == 0:
            raise ShapeError("Classifier.predict: no images given")
        h, w = int(self.image_dims[0]), int(self.image_dims[1])
        channels = np.asarray(inputs[0]).shape[2]
        images = np.zeros((len(inputs), h, w, channels), dtype=np.float32)
        for i, im in enumerate(inputs):
            images[i] = caffe_io.resize_image(im, (h, w))
        ch, cw = int(self.crop_dims[0]), int(self.crop_dims[1])
        if oversample:
            crops = caffe_io.oversample(images, (ch, cw))
        else:
            y, x = int(h / 2.0 - ch / 2.0), int(w / 2.0 - cw / 2.0)
            crops = images[:, y:y + ch, x:x + cw, :]
        in_ = self.inputs[0]
        caffe_in = np.stack([self.transformer.preprocess(in_, c) for c in crops])
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape(len(predictions) // 10, 10, -1).mean(axis=1)
        return predictions
