"""Eltwise: PROD, SUM (coeff), MAX (Caffe's tie rule) forward; gradients; errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import NetError, ShapeError

from .gradcheck import check_gradient, forward_backward
from .reference_ops import eltwise, random_array
from .util import make_layer, run_layer

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)
seeds = st.integers(0, 2**32 - 1)
n_bottoms = st.integers(2, 4)


def text(op, coeffs=(), stable=True):
    c = " ".join(f"coeff: {v}" for v in coeffs)
    return (f'type: "Eltwise" eltwise_param {{ operation: {op} {c} '
            f'stable_prod_grad: {str(stable).lower()} }}')


@settings(max_examples=40, deadline=None)
@given(shapes, seeds, n_bottoms, st.sampled_from(["PROD", "SUM", "MAX"]))
def test_forward_matches_reference(shape, seed, n, op):
    xs = [random_array(seed + i, shape) for i in range(n)]
    (y,) = run_layer(text(op), xs)
    expected = eltwise(op, xs)
    if op == "MAX":
        expected = expected[0]
    # float32 against a float64 reference: n roundings of at most eps/2 relative to
    # the terms' magnitudes (the sum of |x_i| for SUM, which may cancel; |product|
    # for PROD).  MAX copies a value, so its bound is 0.
    eps = np.finfo(np.float32).eps
    if op == "SUM":
        magnitude = sum(np.abs(x.astype(np.float64)) for x in xs)
    else:
        magnitude = np.abs(expected)
    bound = 0.0 if op == "MAX" else n * eps * magnitude + np.finfo(np.float32).tiny
    assert np.all(np.abs(y.astype(np.float64) - expected) <= bound)


@settings(max_examples=30, deadline=None)
@given(shapes, seeds, st.lists(st.sampled_from([1.0, -1.0, 0.5, 2.0, 0.0]), min_size=2, max_size=4))
def test_sum_with_coeffs(shape, seed, coeffs):
    xs = [random_array(seed + i, shape) for i in range(len(coeffs))]
    (y,) = run_layer(text("SUM", coeffs), xs)
    np.testing.assert_allclose(y, eltwise("SUM", xs, coeffs), rtol=1e-6, atol=1e-6)


def test_default_is_sum():
    a, b = random_array(0, (2, 3)), random_array(1, (2, 3))
    np.testing.assert_allclose(run_layer('type: "Eltwise"', [a, b])[0], a + b)


def test_max_gradient_follows_caffes_tie_rule():
    # ties between bottoms 0 and 1 go to bottom 1; a later bottom must be strictly greater
    a = np.array([1.0, 2.0, 5.0], np.float32)
    b = np.array([1.0, 3.0, 0.0], np.float32)
    c = np.array([1.0, 3.0, 5.0], np.float32)
    _, diffs, _, _ = forward_backward(text("MAX"), [a, b, c], [np.ones(3)])
    _, winner = eltwise("MAX", [a, b, c])
    np.testing.assert_array_equal(winner, [1, 1, 0])
    for i, d in enumerate(diffs):
        np.testing.assert_array_equal(d, (winner == i).astype(np.float32))


def distinct_bottoms(seed, shape, n, gap=0.05):
    """n bottoms whose values differ by more than the checker's step at every position."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(shape)
    ranks = np.stack([rng.permutation(n) for _ in range(int(np.prod(shape)))], -1).reshape((n,) + shape)
    spacing = gap + 0.3 * rng.random()  # one spacing for all: neighbours stay > gap apart
    return [(base + spacing * ranks[i]).astype(np.float32) for i in range(n)]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple), seeds, n_bottoms,
       st.sampled_from(["PROD", "PROD_UNSTABLE", "SUM", "MAX"]))
def test_gradient(shape, seed, n, op):
    if op == "MAX":
        xs = distinct_bottoms(seed, shape, n)
        txt = text("MAX")
    else:
        xs = [random_array(seed + i, shape) for i in range(n)]
        if op == "SUM":
            txt = text("SUM", [0.5 + i for i in range(n)])
        else:
            xs = [x + np.sign(x) * 0.3 for x in xs]  # keep away from 0 for the division form
            txt = text("PROD", stable=(op == "PROD"))
    check_gradient(txt, xs)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ShapeError, match=r"\(2, 4\).*\(2, 3\)"):
        make_layer('type: "Eltwise"', [np.zeros((2, 3)), np.zeros((2, 4))])


def test_coeff_count():
    with pytest.raises(NetError, match="one per bottom"):
        make_layer(text("SUM", [1.0]), [np.zeros(2)] * 2)


def test_coeff_with_prod():
    with pytest.raises(NetError, match="only for operation SUM"):
        make_layer(text("PROD", [1.0, 1.0]), [np.zeros(2)] * 2)


def test_needs_two_bottoms():
    with pytest.raises(NetError, match="bottom"):
        make_layer('type: "Eltwise"', [np.zeros(2)])
