"""Dev-only cross-check of the default kernels against PyTorch CPU (run: -m crosscheck).

Where Caffe and PyTorch differ:
* pooled size: both use ceil((H + 2p - k) / s) + 1 and drop a last window that
  starts at or beyond H + p, but Caffe drops it only when p > 0 while PyTorch
  always does; with p == 0 they differ only for stride > kernel.  PyTorch also
  refuses p > k // 2.  Cases outside the agreeing region are skipped.
* AVE divisor: PyTorch's count_include_pad=True uses Caffe's rule (window clipped
  to the padded input), so avg_pool2d(ceil_mode=True) matches wherever sizes do.
* LRN within-channel has no PyTorch counterpart; across matches
  F.local_response_norm (alpha / size, window [c - size//2, c + size//2] for odd size).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinycaffe import kernels

from .helpers import FAST, assert_close, pool_ok

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.crosscheck


def _t(a, grad=False):
    return torch.tensor(a, dtype=torch.float32, requires_grad=grad)


@FAST
@given(n=st.integers(1, 3), group=st.integers(1, 3), cg=st.integers(1, 3), mg=st.integers(1, 3),
       h=st.integers(1, 10), w=st.integers(1, 10), kh=st.integers(1, 4), kw=st.integers(1, 4),
       s=st.tuples(st.integers(1, 3), st.integers(1, 3)), p=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       d=st.tuples(st.integers(1, 2), st.integers(1, 2)), seed=st.integers(0, 2**32 - 1))
def test_conv_matches_torch(n, group, cg, mg, h, w, kh, kw, s, p, d, seed):
    oh = kernels.conv_out_size(h, kh, s[0], p[0], d[0])
    ow = kernels.conv_out_size(w, kw, s[1], p[1], d[1])
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, group * cg, h, w)).astype(np.float32)
    wt = rng.standard_normal((group * mg, cg, kh, kw)).astype(np.float32)
    b = rng.standard_normal(group * mg).astype(np.float32)
    dy = rng.standard_normal((n, group * mg, oh, ow)).astype(np.float32)
    y = kernels.conv_forward(x, wt, b, s, p, d, group)
    tx, tw, tb = _t(x, True), _t(wt, True), _t(b, True)
    ty = F.conv2d(tx, tw, tb, stride=s, padding=p, dilation=d, groups=group)
    assert_close(y, ty.detach().numpy())
    ty.backward(_t(dy))
    dx, dw, db = kernels.conv_backward(x, wt, dy, s, p, d, group)
    assert_close(dx, tx.grad.numpy())
    assert_close(dw, tw.grad.numpy(), rtol=1e-4, atol=1e-4)
    assert_close(db, tb.grad.numpy(), rtol=1e-4, atol=1e-4)


def _torch_pool_size(size, k, s, p):
    out = -(-(size + 2 * p - k) // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return out


@FAST
@given(h=st.integers(1, 12), w=st.integers(1, 12), k=st.integers(1, 4), s=st.integers(1, 4),
       p=st.integers(0, 2), method=st.sampled_from(["max", "ave"]), seed=st.integers(0, 2**32 - 1))
def test_pool_matches_torch_ceil_mode(h, w, k, s, p, method, seed):
    assume(pool_ok(h, k, s, p) and pool_ok(w, k, s, p) and p <= k // 2)
    assume(kernels.pool_out_size(h, k, s, p) == _torch_pool_size(h, k, s, p))
    assume(kernels.pool_out_size(w, k, s, p) == _torch_pool_size(w, k, s, p))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
    y = kernels.pool_forward(x, method, k, s, p)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    tx = _t(x, True)
    if method == "max":
        ty = F.max_pool2d(tx, k, s, p, ceil_mode=True)
    else:
        ty = F.avg_pool2d(tx, k, s, p, ceil_mode=True, count_include_pad=True)
    assert_close(y, ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    ty.backward(_t(dy))
    assert_close(kernels.pool_backward(x, y, dy, method, k, s, p), tx.grad.numpy())


def test_caffe_and_torch_pool_sizes_differ_only_without_pad_and_stride_over_kernel():
    for size in range(1, 20):
        for k in range(1, 5):
            for s in range(1, 6):
                for p in range(0, k):
                    if size + 2 * p < k:
                        continue
                    same = kernels.pool_out_size(size, k, s, p) == _torch_pool_size(size, k, s, p)
                    assert same or (p == 0 and s > k)


@FAST
@given(c=st.integers(1, 9), h=st.integers(1, 6), size=st.sampled_from([1, 3, 5, 7]),
       alpha=st.floats(1e-4, 1.0), beta=st.floats(0.5, 1.5), k=st.floats(0.5, 3.0),
       seed=st.integers(0, 2**32 - 1))
def test_lrn_across_matches_torch(c, h, size, alpha, beta, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c, h, h + 1)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y = kernels.lrn_forward(x, size, alpha, beta, k, "across")
    tx = _t(x, True)
    ty = F.local_response_norm(tx, size, alpha=alpha, beta=beta, k=k)
    assert_close(y, ty.detach().numpy())
    ty.backward(_t(dy))
    assert_close(kernels.lrn_backward(x, y, dy, size, alpha, beta, k, "across"), tx.grad.numpy(),
                 rtol=1e-4, atol=1e-5)
