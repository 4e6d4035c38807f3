"""BatchNorm: normalise each channel to zero mean, unit variance (Caffe's BatchNormLayer).

Three blobs, all statistics rather than learned weights (their lr_mult is
forced to 0, as in Caffe): blob 0 the running sum of means, blob 1 of
variances, blob 2 (shape (1,)) the sum of their weights. The stored mean and
variance are blob0 / blob2[0] and blob1 / blob2[0] (0 if blob2[0] is 0).

``use_global_stats`` (default: true in TEST, false in TRAIN) normalises with
the stored statistics; otherwise with the batch's own, and the running sums
are updated as Caffe does: s <- fraction * s + batch value, with the variance
multiplied by m / (m - 1) (m = values per channel) before being added.
There is no scale or shift here: Caffe follows BatchNorm with a Scale layer.
"""
from __future__ import annotations

from .base import Layer
from .registry import register


@register("BatchNorm")
class BatchNormLayer(Layer):
    min_bottoms = max_bottoms = 1
    min_tops = max_tops = 1
    in_place_ok = True

    def setup(self, bottoms, tops):
        p = self.param.batch_norm_param
        self.moving_average_fraction = float(p.moving_average_fraction)
        self.eps = float(p.eps)
        self.use_global_stats = p.use_global_stats if p.HasField("use_global_stats") else self.phase == "test"
        shape = bottoms[0].shape
        if not shape:
            self.fail("needs a bottom with at least 1 axis")
        self.channels = shape[1] if len(shape) > 1 else 1
        for suffix, blob_shape in (("mean", (self.channels,)), ("variance", (self.channels,)),
                                   ("scale_factor", (1,))):
            self.add_param_blob(blob_shape, suffix)  # zeros
        # The statistics are not trained: lr_mult 0, which Caffe also writes into the net.
        for i in range(3):
            if i == len(self.param.param):
                self.param.param.add().lr_mult = 0.0
            elif self.param.param[i].lr_mult != 0.0:
                self.bad_param(
                    f"param {i} has lr_mult {self.param.param[i].lr_mult}: batch normalization "
                    "statistics cannot be trained (leave lr_mult at 0)"
                )
        self._x_norm = None

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        if not shape:
            self.fail("needs a bottom with at least 1 axis")
        channels = shape[1] if len(shape) > 1 else 1
        if channels != self.channels:
            self.fail(f"bottom shape {shape} has {channels} channels; the layer was set up for {self.channels}")
        self._n = shape[0]
        self._inner = bottoms[0].count // max(self._n * channels, 1)
        if tops[0] is not bottoms[0]:
            tops[0].reshape(shape)
        if self.use_global_stats:
            self._x_norm = None
        elif self._x_norm is None or self._x_norm.shape != shape:
            self._x_norm = self.xp.empty(shape, dtype=bottoms[0].data.dtype)

    def _as3(self, a):
        return a.reshape(self._n, self.channels, self._inner)

    def forward(self, bottoms, tops):
        xp = self.xp
        x3 = self._as3(bottoms[0].data)
        y3 = self._as3(tops[0].data)
        if self.use_global_stats:
            weight = self.blobs[2].data[0]
            factor = xp.where(weight == 0, 0.0, 1.0 / xp.where(weight == 0, 1.0, weight))
            mean = (self.blobs[0].data * factor).astype(x3.dtype, copy=False)
            var = (self.blobs[1].data * factor).astype(x3.dtype, copy=False)
        else:
            mean = x3.mean(axis=(0, 2))
        xp.subtract(x3, mean.reshape(1, -1, 1), out=y3)
        if not self.use_global_stats:
            var = (y3 * y3).mean(axis=(0, 2))
            f = self.moving_average_fraction
            m = bottoms[0].count // self.channels
            correction = m / (m - 1) if m > 1 else 1.0
            s0, s1, s2 = (b.data for b in self.blobs)
            s2 *= f
            s2 += 1.0
            s0 *= f
            s0 += mean
            s1 *= f
            s1 += correction * var
        self._std = xp.sqrt(var + self.eps).reshape(1, -1, 1)
        y3 /= self._std
        if self._x_norm is not None:
            # keep the normalised values: a later in-place layer may overwrite the top
            xp.copyto(self._x_norm, tops[0].data)

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        xp = self.xp
        dy3 = self._as3(tops[0].diff)
        dx3 = self._as3(bottoms[0].diff)
        if self.use_global_stats:
            xp.divide(dy3, self._std, out=dx3)
            return
        # With y = (x - mean) / std over each channel's batch values:
        # dx = (dy - mean(dy) - mean(dy * y) * y) / std
        y3 = self._as3(self._x_norm)
        mean_dy = dy3.mean(axis=(0, 2)).reshape(1, -1, 1)
        mean_dy_y = (dy3 * y3).mean(axis=(0, 2)).reshape(1, -1, 1)
        t = y3 * mean_dy_y
        t += mean_dy
        xp.subtract(dy3, t, out=dx3)
        dx3 /= self._std
