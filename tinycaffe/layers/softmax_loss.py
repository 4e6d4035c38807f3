"""SoftmaxWithLoss: softmax followed by multinomial logistic loss, in one stable step."""
from __future__ import annotations

import numpy as np

from .base import Layer
from .loss_common import label_layout, normalization_mode, normalizer, read_labels
from .params import canonical_axis
from .registry import register
from .softmax import softmax

FLT_MIN = float(np.finfo(np.float32).tiny)


@register("SoftmaxWithLoss")
class SoftmaxWithLoss(Layer):
    min_bottoms = max_bottoms = 2
    min_tops, max_tops = 1, 2

    def default_loss_weight(self, top_index: int) -> float:
        return 1.0 if top_index == 0 else 0.0

    def setup(self, bottoms, tops):
        lp = self.param.loss_param
        self.ignore_label = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = normalization_mode(lp)

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        self.axis = canonical_axis(f"layer '{self.name}'", self.param.softmax_param.axis, len(shape))
        self.outer, self.inner = label_layout(self, shape, bottoms[1].shape, self.axis)
        self.prob = self.xp.empty(shape, dtype=np.float32)
        tops[0].reshape(())
        if len(tops) == 2:
            tops[1].reshape(shape)

    def forward(self, bottoms, tops):
        xp = self.xp
        softmax(xp, bottoms[0].data, self.axis, out=self.prob)
        c = self.prob.shape[self.axis]
        prob = self.prob.reshape(self.outer, c, self.inner)
        safe, valid = read_labels(self, bottoms[1], self.outer, self.inner, c, self.ignore_label)
        picked = xp.take_along_axis(prob, safe[:, None, :], axis=1)[:, 0, :]
        losses = -xp.log(xp.maximum(picked, FLT_MIN)) * valid
        self.valid_count = int(valid.sum())
        norm = normalizer(self.mode, self.outer, self.inner, self.valid_count)
        tops[0].data[...] = losses.sum() / norm
        if len(tops) == 2:
            tops[1].data[...] = self.prob

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[1]:
            self.fail("cannot backpropagate to the label input")
        if not propagate_down[0]:
            return
        xp = self.xp
        c = self.prob.shape[self.axis]
        grad = self.prob.reshape(self.outer, c, self.inner).copy()
        safe, valid = read_labels(self, bottoms[1], self.outer, self.inner, c, self.ignore_label)
        o, i = xp.meshgrid(xp.arange(self.outer), xp.arange(self.inner), indexing="ij")
        grad[o, safe, i] -= 1.0
        grad *= valid[:, None, :]
        norm = normalizer(self.mode, self.outer, self.inner, int(valid.sum()))
        scale = float(tops[0].diff.reshape(-1)[0]) / norm
        bottoms[0].diff[...] = (grad * scale).reshape(bottoms[0].shape)
