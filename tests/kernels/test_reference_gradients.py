"""reference.py backward kernels against central differences of its forward (float64)."""
from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from tinycaffe.kernels import reference as ref
from tinycaffe.kernels import sizes

from .helpers import GRAD, pool_ok, values

EPS = 1e-6


def numeric_grad(f, a: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """d/da of sum(f(a) * dy) by central differences (a is perturbed in place)."""
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + EPS
        up = np.sum(f() * dy)
        flat[i] = keep - EPS
        down = np.sum(f() * dy)
        flat[i] = keep
        gflat[i] = (up - down) / (2 * EPS)
    return g


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@GRAD
@given(n=st.integers(1, 2), group=st.integers(1, 2), cg=st.integers(1, 2), mg=st.integers(1, 2),
       h=st.integers(2, 5), w=st.integers(2, 5), k=st.integers(1, 3), s=st.integers(1, 2),
       p=st.integers(0, 1), d=st.integers(1, 2), seed=st.integers(0, 2**32 - 1))
def test_conv_backward_matches_central_differences(n, group, cg, mg, h, w, k, s, p, d, seed):
    oh, ow = sizes.conv_out_size(h, k, s, p, d), sizes.conv_out_size(w, k, s, p, d)
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, group * cg, h, w))
    wt = rng.standard_normal((group * mg, cg, k, k))
    b = rng.standard_normal(group * mg)
    dy = rng.standard_normal((n, group * mg, oh, ow))
    geo = dict(stride=s, pad=p, dilation=d, group=group)
    dx, dw, db = ref.conv_backward(x, wt, dy, **geo)
    f = lambda: ref.conv_forward(x, wt, b, **geo)  # noqa: E731
    close(dx, numeric_grad(f, x, dy))
    close(dw, numeric_grad(f, wt, dy))
    close(db, numeric_grad(f, b, dy))


@GRAD
@given(h=st.integers(1, 6), w=st.integers(1, 6), k=st.integers(1, 3), s=st.integers(1, 3),
       p=st.integers(0, 2), method=st.sampled_from(["max", "ave"]), seed=st.integers(0, 2**32 - 1))
def test_pool_backward_matches_central_differences(h, w, k, s, p, method, seed):
    assume(pool_ok(h, k, s, p) and pool_ok(w, k, s, p))
    rng = np.random.default_rng(seed)
    # Distinct values 0.1 apart: no max pooling kink lies within EPS of the input.
    x = values(rng, (2, 2, h, w), "distinct").astype(np.float64)
    oh, ow = sizes.pool_out_size(h, k, s, p), sizes.pool_out_size(w, k, s, p)
    dy = rng.standard_normal((2, 2, oh, ow))
    with np.errstate(all="ignore"):
        y = ref.pool_forward(x, method, k, s, p)
        # Caffe's 0/0 AVE windows and empty MAX windows (-FLT_MAX) carry no gradient,
        # and -FLT_MAX * dy would swamp the differences below.
        dy[np.isnan(y) | (y == -ref.FLT_MAX)] = 0
        dx = ref.pool_backward(x, y, dy, method, k, s, p)
        num = numeric_grad(lambda: np.nan_to_num(ref.pool_forward(x, method, k, s, p)), x, dy)
    close(dx, num)


@GRAD
@given(c=st.integers(1, 6), h=st.integers(1, 4), w=st.integers(1, 4), size=st.sampled_from([1, 3, 5]),
       alpha=st.floats(1e-3, 1.0), beta=st.sampled_from([0.75, 0.5, 1.2]), k=st.floats(0.5, 2.0),
       region=st.sampled_from(["across", "within"]), seed=st.integers(0, 2**32 - 1))
def test_lrn_backward_matches_central_differences(c, h, w, size, alpha, beta, k, region, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c, h, w))
    dy = rng.standard_normal(x.shape)
    args = (size, alpha, beta, k, region)
    y = ref.lrn_forward(x, *args)
    close(ref.lrn_backward(x, y, dy, *args), numeric_grad(lambda: ref.lrn_forward(x, *args), x, dy))
