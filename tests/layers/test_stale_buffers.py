"""Every layer writes all of its tops and bottom diffs: nothing relies on a freshly zeroed blob.

Blobs follow Caffe's capacity rule (tinycaffe/blob.py): after a reshape to a
new shape that fits the buffer, ``data`` and ``diff`` hold stale values of the
old shape, not zeros. A net whose batch size changes from one forward to the
next (a server gathering client batches) sees exactly that. For every layer
type the layer tests can build alone, this runs forward (and backward, where
the layer has one) on fresh blobs; then runs it at a larger batch, fills every
top (data and diff) and every bottom diff with NaN, reshapes back, writes the
original inputs again and runs once more: tops and gradients must be the same,
bit for bit (the same kernels on the same shapes), and free of NaN.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from tinycaffe.layers.base import Layer
from tinycaffe.layers.registry import known_types

from .util import make_layer

Bottoms = Callable[[int, np.random.Generator], list]

# Layers whose tops come from outside the layer (files, the caller, a socket): they
# have no bottoms, and what they write is tested with their own sources.
NOT_BUILT_ALONE = {
    "Data": "reads an LMDB/LevelDB",
    "ImageData": "reads image files",
    "HDF5Data": "reads HDF5 files",
    "MemoryData": "its tops are arrays the caller hands over",
    "Input": "its tops are written by the caller",
    "Sink": "sends its bottoms over a socket",
    "Source": "its tops are written by the server from a socket",
}


def _x(*shape):
    return lambda n, r: [r.standard_normal((n, *shape)).astype(np.float32)]


def _scores_labels(classes=5, extra=()):
    def make(n, r):
        return [r.standard_normal((n, classes, *extra)).astype(np.float32),
                r.integers(0, classes, (n, *extra)).astype(np.float32)]
    return make


def _probs_labels(classes=5):
    def make(n, r):
        p = r.uniform(0.05, 1.0, (n, classes)).astype(np.float32)
        return [p / p.sum(1, keepdims=True), r.integers(0, classes, n).astype(np.float32)]
    return make


@dataclass
class Case:
    type: str
    text: str
    bottoms: Bottoms
    n_tops: int = 1
    phase: str = "train"
    in_place: bool = False
    no_down: tuple[int, ...] = ()  # bottoms that get no gradient (labels, indices)
    backward: bool = True  # False for layers whose backward only refuses (Accuracy, ArgMax)
    label: str = field(default="")

    @property
    def id(self) -> str:
        return self.label or self.type


GAUSS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'

CASES = [
    Case("AbsVal", 'type: "AbsVal"', _x(3, 4, 4)),
    Case("Accuracy", 'type: "Accuracy" accuracy_param { top_k: 2 }', _scores_labels(), n_tops=2, backward=False),
    Case("ArgMax", 'type: "ArgMax" argmax_param { top_k: 2 out_max_val: true }', _x(6), backward=False),
    Case("ArgMax", 'type: "ArgMax" argmax_param { top_k: 2 axis: 1 }', _x(6, 3), label="ArgMax-axis",
         backward=False),
    Case("BNLL", 'type: "BNLL"', _x(3, 4, 4)),
    Case("BatchNorm", 'type: "BatchNorm"', _x(3, 4, 4)),
    Case("BatchNorm", 'type: "BatchNorm"', _x(3, 4, 4), in_place=True, label="BatchNorm-in-place"),
    Case("Bias", 'type: "Bias" bias_param { filler { type: "gaussian" } }', _x(3, 4, 4)),
    Case("Bias", 'type: "Bias" bias_param { axis: 0 }', lambda n, r: [r.standard_normal((n, 3, 4)).astype(np.float32),
                                               r.standard_normal((n, 3)).astype(np.float32)],
         label="Bias-two-bottoms"),
    Case("Concat", 'type: "Concat" concat_param { axis: 1 }',
         lambda n, r: [r.standard_normal((n, 2, 3, 3)).astype(np.float32),
                       r.standard_normal((n, 3, 3, 3)).astype(np.float32)]),
    Case("Concat", 'type: "Concat" concat_param { axis: 0 }',
         lambda n, r: [r.standard_normal((n, 2, 3)).astype(np.float32),
                       r.standard_normal((n + 1, 2, 3)).astype(np.float32)], label="Concat-axis0"),
    Case("ContrastiveLoss", 'type: "ContrastiveLoss" contrastive_loss_param { margin: 2 }',
         lambda n, r: [r.standard_normal((n, 4)).astype(np.float32), r.standard_normal((n, 4)).astype(np.float32),
                       r.integers(0, 2, (n, 1, 1, 1)).astype(np.float32)], no_down=(2,)),
    Case("Convolution", f'type: "Convolution" convolution_param {{ num_output: 4 kernel_size: 3 pad: 1 stride: 2 {GAUSS} }}',
         _x(3, 7, 7)),
    Case("Convolution", f'type: "Convolution" convolution_param {{ num_output: 4 kernel_size: 3 group: 2 {GAUSS} }}',
         _x(4, 6, 6), label="Convolution-group"),
    Case("Convolution", f'type: "Convolution" convolution_param {{ num_output: 8 kernel_size: 5 pad: 2 {GAUSS} }}',
         _x(8, 9, 9), label="Convolution-5x5"),
    Case("Convolution", f'type: "Convolution" convolution_param {{ num_output: 3 kernel_size: 1 {GAUSS} }}',
         _x(4, 5, 5), label="Convolution-1x1"),
    Case("Crop", 'type: "Crop" crop_param { axis: 2 offset: 1 }',
         lambda n, r: [r.standard_normal((n, 3, 6, 6)).astype(np.float32),
                       r.standard_normal((n, 3, 4, 4)).astype(np.float32)], no_down=(1,)),
    Case("Deconvolution", f'type: "Deconvolution" convolution_param {{ num_output: 2 kernel_size: 3 stride: 2 pad: 1 {GAUSS} }}',
         _x(3, 4, 4)),
    Case("Dropout", 'type: "Dropout" dropout_param { dropout_ratio: 0.5 }', _x(3, 4, 4)),
    Case("Dropout", 'type: "Dropout" dropout_param { dropout_ratio: 0.3 }', _x(3, 4, 4), in_place=True,
         label="Dropout-in-place"),
    Case("DummyData", 'type: "DummyData" dummy_data_param { shape { dim: [2, 3] } data_filler { type: "constant" value: 0.5 } '
         'shape { dim: [2] } data_filler { type: "constant" value: -1.5 } }', lambda n, r: [], n_tops=2),
    Case("ELU", 'type: "ELU" elu_param { alpha: 0.5 }', _x(3, 4, 4)),
    Case("Eltwise", 'type: "Eltwise" eltwise_param { operation: SUM coeff: 0.5 coeff: -2 }',
         lambda n, r: [r.standard_normal((n, 3, 4)).astype(np.float32) for _ in range(2)]),
    Case("Eltwise", 'type: "Eltwise" eltwise_param { operation: PROD }',
         lambda n, r: [r.standard_normal((n, 3, 4)).astype(np.float32) for _ in range(3)], label="Eltwise-prod"),
    Case("Eltwise", 'type: "Eltwise" eltwise_param { operation: MAX }',
         lambda n, r: [r.standard_normal((n, 3, 4)).astype(np.float32) for _ in range(3)], label="Eltwise-max"),
    Case("Embed", 'type: "Embed" embed_param { num_output: 3 input_dim: 5 weight_filler { type: "gaussian" } '
         'bias_filler { type: "gaussian" } }', lambda n, r: [r.integers(0, 5, (n, 2)).astype(np.float32)],
         no_down=(0,)),
    Case("EuclideanLoss", 'type: "EuclideanLoss"',
         lambda n, r: [r.standard_normal((n, 4)).astype(np.float32) for _ in range(2)]),
    Case("Exp", 'type: "Exp" exp_param { base: 2 scale: 0.5 shift: 0.1 }', _x(3, 4)),
    Case("Flatten", 'type: "Flatten"', _x(3, 2, 2)),
    Case("HingeLoss", 'type: "HingeLoss"', _scores_labels(), no_down=(1,)),
    Case("HingeLoss", 'type: "HingeLoss" hinge_loss_param { norm: L2 }', _scores_labels(), no_down=(1,),
         label="HingeLoss-L2"),
    Case("InfogainLoss", 'type: "InfogainLoss"',
         lambda n, r: [*_scores_labels()(n, r), r.uniform(0, 1, (5, 5)).astype(np.float32)], no_down=(1, 2)),
    Case("InnerProduct", f'type: "InnerProduct" inner_product_param {{ num_output: 4 {GAUSS} }}', _x(3, 2, 2)),
    Case("LRN", 'type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 }', _x(5, 3, 3)),
    Case("LRN", 'type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL }',
         _x(3, 5, 5), label="LRN-within"),
    Case("Log", 'type: "Log" log_param { base: 2 scale: 0.5 shift: 3 }', lambda n, r: [r.uniform(1, 2, (n, 3, 4)).astype(np.float32)]),
    Case("MVN", 'type: "MVN"', _x(3, 4, 4)),
    Case("MVN", 'type: "MVN" mvn_param { across_channels: true normalize_variance: false }', _x(3, 4, 4),
         label="MVN-across"),
    Case("MultinomialLogisticLoss", 'type: "MultinomialLogisticLoss"', _probs_labels(), no_down=(1,)),
    Case("PReLU", 'type: "PReLU" prelu_param { filler { type: "gaussian" } }', _x(3, 4, 4)),
    Case("Pooling", 'type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }', _x(3, 7, 7)),
    Case("Pooling", 'type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 }', _x(3, 8, 8),
         n_tops=2, label="Pooling-max-mask"),
    Case("Pooling", 'type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 }', _x(3, 8, 8),
         label="Pooling-ave"),
    Case("Pooling", 'type: "Pooling" pooling_param { pool: AVE global_pooling: true }', _x(3, 5, 5),
         label="Pooling-global"),
    Case("Power", 'type: "Power" power_param { power: 2 scale: 0.5 shift: 1 }', _x(3, 4)),
    Case("ReLU", 'type: "ReLU"', _x(3, 4, 4)),
    Case("ReLU", 'type: "ReLU" relu_param { negative_slope: 0.1 }', _x(3, 4, 4), in_place=True, label="ReLU-in-place"),
    Case("Reduction", 'type: "Reduction" reduction_param { operation: SUMSQ axis: 1 }', _x(3, 4)),
    Case("Reduction", 'type: "Reduction" reduction_param { operation: MEAN axis: 0 coeff: 2 }', _x(3, 4),
         label="Reduction-all"),
    Case("Reshape", 'type: "Reshape" reshape_param { shape { dim: 0 dim: -1 } }', _x(3, 2, 2)),
    Case("Scale", 'type: "Scale" scale_param { bias_term: true filler { type: "gaussian" } '
         'bias_filler { type: "gaussian" } }', _x(3, 4, 4)),
    Case("Scale", 'type: "Scale" scale_param { axis: 0 }',
         lambda n, r: [r.standard_normal((n, 3, 4)).astype(np.float32), r.standard_normal((n, 3)).astype(np.float32)],
         label="Scale-two-bottoms"),
    Case("Sigmoid", 'type: "Sigmoid"', _x(3, 4, 4)),
    Case("Sigmoid", 'type: "Sigmoid"', _x(3, 4, 4), in_place=True, label="Sigmoid-in-place"),
    Case("SigmoidCrossEntropyLoss", 'type: "SigmoidCrossEntropyLoss"',
         lambda n, r: [r.standard_normal((n, 5)).astype(np.float32), r.uniform(0, 1, (n, 5)).astype(np.float32)],
         no_down=(1,)),
    Case("Silence", 'type: "Silence"', lambda n, r: [r.standard_normal((n, 3)).astype(np.float32)] * 2, n_tops=0),
    Case("Slice", 'type: "Slice" slice_param { axis: 1 slice_point: 2 slice_point: 4 }', _x(6, 2, 2), n_tops=3),
    Case("Slice", 'type: "Slice" slice_param { axis: 0 slice_point: 1 }', _x(3), n_tops=2, label="Slice-axis0"),
    Case("Softmax", 'type: "Softmax"', _x(5, 2, 2)),
    Case("SoftmaxWithLoss", 'type: "SoftmaxWithLoss"', _scores_labels(extra=(2,)), no_down=(1,)),
    Case("SoftmaxWithLoss", 'type: "SoftmaxWithLoss" loss_param { ignore_label: 1 normalization: VALID }',
         _scores_labels(), no_down=(1,), n_tops=2, label="SoftmaxWithLoss-ignore"),
    Case("Split", 'type: "Split"', _x(3, 4), n_tops=3),
    Case("TanH", 'type: "TanH"', _x(3, 4, 4)),
    Case("Threshold", 'type: "Threshold" threshold_param { threshold: 0.2 }', _x(3, 4), backward=False),
    Case("Tile", 'type: "Tile" tile_param { axis: 1 tiles: 3 }', _x(2, 3)),
]

BATCH, LARGER = 3, 8


def test_every_layer_type_is_covered_or_excused():
    covered = {c.type for c in CASES}
    missing = set(known_types()) - covered - set(NOT_BUILT_ALONE)
    assert not missing, f"add these layer types to CASES (or to NOT_BUILT_ALONE with a reason): {sorted(missing)}"


def _has_backward(layer) -> bool:
    return type(layer).backward is not Layer.backward


def _run(case, layer, bottoms, tops, inputs, params, top_diffs):
    """Inputs and parameters written, one forward and (where the layer has one) one backward
    from ``top_diffs`` (None: ones); returns NumPy copies of the tops, bottom diffs and
    parameter diffs."""
    for b, x in zip(bottoms, inputs):
        if b.shape != x.shape:
            b.reshape(x.shape)
        b.data[...] = x
    for p, v in zip(layer.blobs, params):
        p.data[...] = v
    layer.rng = np.random.default_rng(7)  # Dropout, STOCHASTIC pooling: the same draws each run
    layer.reshape(bottoms, tops)
    layer.forward(bottoms, tops)
    out = [np.array(t.data) for t in tops]
    grads: list = []
    if case.backward and _has_backward(layer) and case.phase == "train" and tops:
        for k, t in enumerate(tops):
            t.diff[...] = 1.0 if top_diffs is None else top_diffs[k]  # in place, this is the bottom's diff: written before backward, as a Net does
        for p in layer.blobs:
            p.diff[...] = 0  # parameter gradients accumulate; the solver zeroes them
        down = [j not in case.no_down for j in range(len(bottoms))]
        layer.backward(tops, down, bottoms)
        grads = [np.array(b.diff) for j, b in enumerate(bottoms) if down[j]]
        grads += [np.array(p.diff) for p in layer.blobs]
    return out, grads


def _spoil(blobs, shapes):
    """Grow every blob to ``shapes``, fill data and diff with NaN (a stale, larger batch)."""
    for b, s in zip(blobs, shapes):
        b.reshape(s)
        b.data[...] = np.nan
        b.diff[...] = np.nan


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_layer_gives_the_same_results_on_reused_stale_buffers(case):
    rng = np.random.default_rng(0)
    inputs = case.bottoms(BATCH, rng)
    layer, bottoms, tops = make_layer(case.text, inputs, case.n_tops, case.phase, in_place=case.in_place)
    params = [np.array(p.data) for p in layer.blobs]
    top_diffs = [rng.standard_normal(t.shape).astype(np.float32) for t in tops]
    fresh_out, fresh_grads = _run(case, layer, bottoms, tops, inputs, params, top_diffs)

    # A larger batch runs through the layer (its own caches see the larger shape too) ...
    big = case.bottoms(LARGER, np.random.default_rng(1))
    if big:
        _run(case, layer, bottoms, tops, big, params, None)
    # ... and leaves NaN in every top, top diff and bottom diff, at a shape larger still.
    shapes = [tuple(s * 2 for s in t.shape) or (4,) for t in tops]
    _spoil(tops, shapes)
    for b in bottoms:
        if not any(b is t for t in tops):
            b.reshape(tuple(s * 2 for s in b.shape) or (4,))
            b.diff[...] = np.nan
    again_out, again_grads = _run(case, layer, bottoms, tops, inputs, params, top_diffs)

    for k, (a, b) in enumerate(zip(fresh_out, again_out)):
        assert not np.isnan(b).any(), f"{case.id}: top {k} keeps stale values after a reshape"
        np.testing.assert_array_equal(b, a, err_msg=f"{case.id}: top {k} differs on reused buffers")
    assert len(fresh_grads) == len(again_grads)
    for k, (a, b) in enumerate(zip(fresh_grads, again_grads)):
        assert not np.isnan(b).any(), f"{case.id}: gradient {k} keeps stale values after a reshape"
        np.testing.assert_array_equal(b, a, err_msg=f"{case.id}: gradient {k} differs on reused buffers")


def test_the_check_catches_a_layer_that_relies_on_zeroed_diffs(monkeypatch):
    """Crop's backward without its zeroing (it writes only the cropped window) must fail here."""
    from tinycaffe.layers.crop import CropLayer

    def scatter_only(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            bottoms[0].diff[self._index] = tops[0].diff

    monkeypatch.setattr(CropLayer, "backward", scatter_only)
    case = next(c for c in CASES if c.type == "Crop")
    with pytest.raises(AssertionError, match="Crop: gradient 0 keeps stale values"):
        test_layer_gives_the_same_results_on_reused_stale_buffers(case)


def test_the_check_catches_a_forward_that_writes_part_of_its_top(monkeypatch):
    """A Pooling forward that skips the last image (a top written only in part) must fail here."""
    from tinycaffe.layers.pooling import Pooling

    real = Pooling.forward

    def partial(self, bottoms, tops):
        keep = np.array(tops[0].data[-1])
        real(self, bottoms, tops)
        tops[0].data[-1] = keep  # what the buffer held before this forward

    monkeypatch.setattr(Pooling, "forward", partial)
    case = next(c for c in CASES if c.id == "Pooling-ave")
    with pytest.raises(AssertionError, match="Pooling-ave: top 0 keeps stale values"):
        test_layer_gives_the_same_results_on_reused_stale_buffers(case)
