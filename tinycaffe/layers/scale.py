"""Scale: multiply by a scale broadcast over outer and inner axes, plus an optional bias
(Caffe's ScaleLayer).

The scale is a second bottom, or a learned blob of shape
bottom.shape[axis:axis + num_axes] (num_axes -1: to the end; 0 axes is one
scalar) filled by ``filler`` (default constant 1). ``bias_term`` adds a
learned bias of the same shape (``bias_filler``, default constant 0), which
comes after the scale in the layer's blobs. Parameter gradients are
accumulated into the blobs' diffs; a second bottom's diff is overwritten.
"""
from __future__ import annotations

from ..proto import caffe_pb2
from .base import Layer
from .bias import broadcast_dims, learned_shape
from .registry import register


@register("Scale")
class ScaleLayer(Layer):
    min_bottoms, max_bottoms = 1, 2
    min_tops = max_tops = 1
    in_place_ok = True  # backward then uses a copy of the input kept by forward

    def setup(self, bottoms, tops):
        p = self.param.scale_param
        if len(bottoms) == 1:
            shape = learned_shape(self, bottoms[0].shape, p.axis, p.num_axes)
            filler = p.filler if p.HasField("filler") else caffe_pb2.FillerParameter(type="constant", value=1.0)
            self.scale_blob = self.add_param_blob(shape, "scale", filler)
        else:
            shape = bottoms[1].shape
            self.scale_blob = None
        self.bias_blob = self.add_param_blob(shape, "bias", p.bias_filler) if p.bias_term else None
        self._saved = None

    def _scale(self, bottoms):
        return bottoms[1] if len(bottoms) > 1 else self.scale_blob

    def reshape(self, bottoms, tops):
        scale = self._scale(bottoms)
        self._dims = broadcast_dims(self, bottoms[0].shape, scale.shape,
                                    self.param.scale_param.axis, "scale")
        if self.bias_blob is not None and self.bias_blob.shape != scale.shape:
            self.fail(f"bias blob shape {self.bias_blob.shape} does not match scale shape {scale.shape}")
        self._saved = self.in_place_buffer(bottoms[0], tops[0], self._saved)

    def forward(self, bottoms, tops):
        xp = self.xp
        outer, dim, inner = self._dims
        if self._saved is not None:
            xp.copyto(self._saved, bottoms[0].data)
        y3 = tops[0].data.reshape(outer, dim, inner)
        xp.multiply(bottoms[0].data.reshape(outer, dim, inner),
                    self._scale(bottoms).data.reshape(1, dim, 1), out=y3)
        if self.bias_blob is not None:
            y3 += self.bias_blob.data.reshape(1, dim, 1)

    def backward(self, tops, propagate_down, bottoms):
        xp = self.xp
        outer, dim, inner = self._dims
        scale = self._scale(bottoms)
        dy3 = tops[0].diff.reshape(outer, dim, inner)
        # Parameter and scale gradients first: in-place, the bottom diff overwrites dy.
        if self.bias_blob is not None:
            self.bias_blob.diff += dy3.sum(axis=(0, 2)).reshape(self.bias_blob.shape)
        if self.scale_blob is not None or propagate_down[1]:
            x = self._saved if self._saved is not None else bottoms[0].data
            grad = (dy3 * x.reshape(outer, dim, inner)).sum(axis=(0, 2)).reshape(scale.shape)
            if self.scale_blob is not None:
                self.scale_blob.diff += grad
            else:
                scale.diff[...] = grad
        if propagate_down[0]:
            xp.multiply(dy3, scale.data.reshape(1, dim, 1),
                        out=bottoms[0].diff.reshape(outer, dim, inner))
