"""Accuracy: the fraction of samples whose label is among the top_k scores."""
from __future__ import annotations

import numpy as np

from .base import Layer
from .loss_common import label_layout, read_labels
from .params import canonical_axis
from .registry import register


@register("Accuracy")
class Accuracy(Layer):
    min_bottoms = max_bottoms = 2
    min_tops, max_tops = 1, 2

    def setup(self, bottoms, tops):
        p = self.param.accuracy_param
        self.top_k = int(p.top_k)
        self.ignore_label = int(p.ignore_label) if p.HasField("ignore_label") else None

    def reshape(self, bottoms, tops):
        shape = bottoms[0].shape
        self.axis = canonical_axis(f"layer '{self.name}'", self.param.accuracy_param.axis, len(shape))
        self.classes = shape[self.axis]
        if self.top_k > self.classes:
            self.bad_param(f"top_k {self.top_k} is larger than the {self.classes} classes")
        self.outer, self.inner = label_layout(self, shape, bottoms[1].shape, self.axis)
        tops[0].reshape(())
        if len(tops) == 2:
            tops[1].reshape((self.classes,))

    def forward(self, bottoms, tops):
        xp = self.xp
        c = self.classes
        scores = bottoms[0].data.reshape(self.outer, c, self.inner)
        safe, valid = read_labels(self, bottoms[1], self.outer, self.inner, c, self.ignore_label)
        true_score = xp.take_along_axis(scores, safe[:, None, :], axis=1)
        # Caffe counts every other class scoring at least as high: a tie counts against the label.
        better = (scores >= true_score).sum(axis=1) - 1
        correct = (better < self.top_k) & valid
        count = int(valid.sum())
        tops[0].data[...] = float(correct.sum()) / count if count else 0.0
        if len(tops) == 2:
            per_class = xp.zeros(c, dtype=np.float32)
            for k in range(c):
                of_k = valid & (safe == k)
                n = int(of_k.sum())
                per_class[k] = float((correct & of_k).sum()) / n if n else 0.0
            tops[1].data[...] = per_class

    def backward(self, tops, propagate_down, bottoms):
        if any(propagate_down):
            self.fail("Accuracy has no gradient")
