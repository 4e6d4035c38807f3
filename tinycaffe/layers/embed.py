"""Embed: a lookup table, as Caffe's EmbedLayer (a one-hot InnerProduct in effect).

The bottom holds integer indices in [0, input_dim) (any shape); the top has
the bottom's shape plus one axis of num_output: top[..., :] = W[index] (+ bias).
W is (input_dim, num_output). No gradient flows to the indices.
"""
from __future__ import annotations

import numpy as np

from .base import Layer
from .registry import register


@register("Embed")
class EmbedLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1

    def setup(self, bottoms, tops):
        p = self.param.embed_param
        self.num_output = int(p.num_output)
        self.input_dim = int(p.input_dim)
        if self.num_output <= 0:
            self.bad_param("embed_param.num_output must be positive")
        if self.input_dim <= 0:
            self.bad_param("embed_param.input_dim must be positive")
        self.bias_term = bool(p.bias_term)
        self.add_param_blob((self.input_dim, self.num_output), "weight", p.weight_filler)
        if self.bias_term:
            self.add_param_blob((self.num_output,), "bias", p.bias_filler)

    def reshape(self, bottoms, tops):
        tops[0].reshape((*bottoms[0].shape, self.num_output))

    def _indices(self, bottoms):
        raw = bottoms[0].data.reshape(-1)
        idx = raw.astype(np.intp)  # take() wants the platform's index type (int32 on 32-bit ARM)
        bad = (idx < 0) | (idx >= self.input_dim) | (idx != raw)
        if bool(bad.any()):
            value = float(raw[bad][0])
            if not np.isfinite(value) or value != int(value):
                self.fail(f"input values must be integer indices; found {value}")
            self.fail(f"index {int(value)} is out of range: input_dim is {self.input_dim} "
                      f"(indices must lie in [0, {self.input_dim}))")
        return idx

    def forward(self, bottoms, tops):
        idx = self._indices(bottoms)
        out = tops[0].data.reshape(-1, self.num_output)
        self.xp.take(self.blobs[0].data, idx, axis=0, out=out)
        if self.bias_term:
            out += self.blobs[1].data

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            self.fail("cannot backpropagate to the index input")
        xp = self.xp
        dy = tops[0].diff.reshape(-1, self.num_output)
        idx = self._indices(bottoms)
        # repeated indices accumulate (add.at is unbuffered)
        if xp is np:
            np.add.at(self.blobs[0].diff, idx, dy)
        else:
            import cupyx

            cupyx.scatter_add(self.blobs[0].diff, idx, dy)
        if self.bias_term:
            self.blobs[1].diff[...] += dy.sum(axis=0)
