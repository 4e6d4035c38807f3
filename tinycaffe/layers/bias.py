"""Bias: add a bias broadcast over the bottom's outer and inner axes (Caffe's BiasLayer).

The bias is a second bottom, or a learned blob of shape
bottom.shape[axis:axis + num_axes] (num_axes -1: to the end) filled by
``filler`` (default constant 0). A bias with 0 axes is a single scalar.
Parameter gradients are accumulated into the blob's diff.
"""
from __future__ import annotations

from math import prod

from .base import Layer
from .params import canonical_axis
from .registry import register


def broadcast_dims(layer, shape, operand_shape, axis, what):
    """(outer, dim, inner) for an operand applied to ``shape`` from ``axis`` on (Scale/Bias rule)."""
    if len(operand_shape) == 0:
        axis = 0  # a scalar applies everywhere; Caffe picks axis 0
    else:
        axis = canonical_axis(f"layer '{layer.name}' (type {layer.type})", axis, len(shape))
    k = len(operand_shape)
    if axis + k > len(shape) or tuple(shape[axis:axis + k]) != tuple(operand_shape):
        layer.fail(
            f"{what} of shape {tuple(operand_shape)} does not match bottom shape {tuple(shape)} "
            f"from axis {axis} (need bottom.shape[{axis}:{axis + k}] == {tuple(operand_shape)})"
        )
    return prod(shape[:axis]), prod(operand_shape), prod(shape[axis + k:])


def learned_shape(layer, shape, axis, num_axes):
    """The shape of a learned Scale/Bias blob: shape[axis:axis + num_axes]."""
    axis = canonical_axis(f"layer '{layer.name}' (type {layer.type})", axis, len(shape))
    if num_axes < -1:
        layer.bad_param(f"num_axes must be >= 0, or -1 to the end; got {num_axes}")
    if num_axes >= 0 and axis + num_axes > len(shape):
        layer.bad_param(
            f"axis {axis} + num_axes {num_axes} goes past the {len(shape)} axes of bottom shape {shape}"
        )
    return tuple(shape[axis:] if num_axes == -1 else shape[axis:axis + num_axes])


@register("Bias")
class BiasLayer(Layer):
    min_bottoms, max_bottoms = 1, 2
    min_tops = max_tops = 1
    in_place_ok = True

    def setup(self, bottoms, tops):
        p = self.param.bias_param
        if len(bottoms) == 1:
            shape = learned_shape(self, bottoms[0].shape, p.axis, p.num_axes)
            self.add_param_blob(shape, "bias", p.filler)

    def _bias(self, bottoms):
        return bottoms[1] if len(bottoms) > 1 else self.blobs[0]

    def reshape(self, bottoms, tops):
        bias = self._bias(bottoms)
        self._dims = broadcast_dims(self, bottoms[0].shape, bias.shape,
                                    self.param.bias_param.axis, "bias")
        if tops[0] is not bottoms[0]:
            tops[0].reshape(bottoms[0].shape)

    def forward(self, bottoms, tops):
        outer, dim, inner = self._dims
        b = self._bias(bottoms).data.reshape(1, dim, 1)
        self.xp.add(bottoms[0].data.reshape(outer, dim, inner), b,
                    out=tops[0].data.reshape(outer, dim, inner))

    def backward(self, tops, propagate_down, bottoms):
        outer, dim, inner = self._dims
        dy = tops[0].diff
        if propagate_down[0] and bottoms[0] is not tops[0]:
            self.xp.copyto(bottoms[0].diff, dy)
        grad = dy.reshape(outer, dim, inner).sum(axis=(0, 2))
        if len(bottoms) == 1:
            self.blobs[0].diff += grad.reshape(self.blobs[0].shape)
        elif propagate_down[1]:
            bottoms[1].diff[...] = grad.reshape(bottoms[1].shape)
