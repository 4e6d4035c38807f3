"""InfogainLoss: multinomial logistic loss weighted by an "infogain" matrix H (Caffe's layer).

As in current Caffe, the first bottom holds raw scores: the layer applies a
softmax over ``infogain_loss_param.axis`` (default 1) itself. For each
position with label y (ignore_label positions skipped):
    loss -= sum_l H[y, l] * log(max(p_l, 1e-20))
and the sum is divided by the normaliser ``loss_param.normalization`` asks
for (default VALID). H (C x C, any shape with C*C values) comes from the
binaryproto file ``infogain_loss_param.source`` or from a third bottom.
Backward (to the scores): (p_l * sum_k H[y, k] - H[y, l]) / normaliser.
An optional second top gives the softmax probabilities.
"""
from __future__ import annotations

import numpy as np

from ..errors import TinyCaffeError
from .base import Layer
from .loss_common import label_layout, normalization_mode, normalizer, read_labels
from .params import canonical_axis
from .registry import register
from .softmax import softmax

LOG_THRESHOLD = 1e-20  # Caffe's kLOG_THRESHOLD


@register("InfogainLoss")
class InfogainLossLayer(Layer):
    min_bottoms, max_bottoms = 2, 3
    min_tops, max_tops = 1, 2

    def default_loss_weight(self, top_index):
        return 1.0 if top_index == 0 else 0.0

    def setup(self, bottoms, tops):
        lp = self.param.loss_param
        self.ignore_label = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = normalization_mode(lp)
        p = self.param.infogain_loss_param
        self.H_file = None
        if len(bottoms) < 3:
            if not p.source:
                self.bad_param("the infogain matrix is needed: set infogain_loss_param.source "
                               "(a binaryproto file) or give it as a third bottom")
            from ..proto.binaryproto import read_blob

            try:
                h = read_blob(p.source)
            except TinyCaffeError as exc:
                self.bad_param(f"cannot read the infogain matrix: {exc}")
            self.H_file = self.xp.asarray(np.asarray(h, dtype=np.float32))

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        self.axis = canonical_axis(f"layer '{self.name}'", self.param.infogain_loss_param.axis, len(shape))
        self.outer, self.inner = label_layout(self, shape, bottoms[1].shape, self.axis)
        self.c = shape[self.axis]
        h_count = self.H_file.size if self.H_file is not None else bottoms[2].count
        if h_count != self.c * self.c:
            where = f"file {self.param.infogain_loss_param.source}" if self.H_file is not None else "the third bottom"
            self.fail(f"the infogain matrix ({where}) has {h_count} values; {self.c} classes need "
                      f"{self.c}x{self.c} = {self.c * self.c}")
        self.prob = self.xp.empty(shape, dtype=np.float32)
        tops[0].reshape(())
        if len(tops) == 2:
            tops[1].reshape(shape)

    def _H(self, bottoms):
        h = self.H_file if self.H_file is not None else bottoms[2].data
        return h.reshape(self.c, self.c)

    def _labels(self, bottoms):
        return read_labels(self, bottoms[1], self.outer, self.inner, self.c, self.ignore_label)

    def forward(self, bottoms, tops):
        xp = self.xp
        softmax(xp, bottoms[0].data, self.axis, out=self.prob)
        prob = self.prob.reshape(self.outer, self.c, self.inner)
        labels, valid = self._labels(bottoms)
        rows = self._H(bottoms)[labels]                    # (outer, inner, C): H[y, :]
        logp = xp.log(xp.maximum(prob, LOG_THRESHOLD))     # (outer, C, inner)
        per_pos = (rows * xp.moveaxis(logp, 1, 2)).sum(axis=2)
        loss = -(per_pos * valid).sum()
        self.valid_count = int(valid.sum())
        tops[0].data[...] = loss / normalizer(self.mode, self.outer, self.inner, self.valid_count)
        if len(tops) == 2:
            tops[1].data[...] = self.prob

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[1]:
            self.fail("cannot backpropagate to the label input")
        if len(propagate_down) > 2 and propagate_down[2]:
            self.fail("cannot backpropagate to the infogain matrix input")
        if not propagate_down[0]:
            return
        xp = self.xp
        H = self._H(bottoms)
        labels, valid = self._labels(bottoms)
        prob = self.prob.reshape(self.outer, self.c, self.inner)
        row_sums = H.sum(axis=1)[labels]                   # (outer, inner)
        rows = xp.moveaxis(H[labels], 2, 1)                # (outer, C, inner)
        grad = (prob * row_sums[:, None, :] - rows) * valid[:, None, :]
        scale = float(tops[0].diff.reshape(-1)[0]) / normalizer(
            self.mode, self.outer, self.inner, int(valid.sum()))
        bottoms[0].diff[...] = (grad * scale).reshape(bottoms[0].shape)
