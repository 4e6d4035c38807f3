"""Deconvolution against PyTorch's conv_transpose2d (dev-only: -m crosscheck)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.layers.util import run_layer

pytestmark = pytest.mark.crosscheck
torch = pytest.importorskip("torch")


@pytest.mark.parametrize("k,s,p,d,g", [(4, 2, 1, 1, 1), (3, 1, 1, 2, 2), (2, 3, 0, 1, 1)])
def test_deconvolution_matches_torch(k, s, p, d, g):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    w = rng.standard_normal((4, 6 // g, k, k)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    text = (f'type: "Deconvolution" convolution_param {{ num_output: 6 kernel_size: {k} stride: {s} '
            f'pad: {p} dilation: {d} group: {g} }}')
    (ours,) = run_layer(text, [x], params=[w, b])
    theirs = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=s, padding=p, dilation=d, groups=g
    ).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
