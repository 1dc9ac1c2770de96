"""The largest group root of lambda_max (sparse-group geometries) without bisecting every group."""

import numpy as np
import pytest

from xl_factorlasso.core.linear_model._lambda_max import (
    _closed_form_roots,
    _group_roots,
    _largest_root,
)


def _problem(rng):
    r, c = rng.integers(1, 60), rng.integers(1, 15)
    values = np.abs(rng.normal(size=(r, c))) * 10.0 ** rng.uniform(-8, 3)
    values[rng.random((r, c)) < 0.3] = 0.0
    if rng.random() < 0.2:  # every group the same: ties for the largest root
        values[:] = values[0]
    if rng.random() < 0.2:  # ties inside a group: breakpoints shared by several cells
        values = np.round(values, 1)
    if rng.random() < 0.05:
        values[:] = 0.0
    cell_w = rng.uniform(0.1, 3.0, size=(r, c)) if rng.random() < 0.5 else np.ones((r, c))
    weight = rng.uniform(0.1, 3.0, size=r)
    return values, cell_w, weight


@pytest.mark.parametrize("a", [0.01, 0.1, 0.5, 0.9, 0.999])
def test_largest_root_equals_the_bisection_of_every_group_bit_for_bit(a):
    rng = np.random.default_rng(int(a * 1000))
    for _ in range(300):
        values, cell_w, weight = _problem(rng)
        assert _largest_root(values, cell_w, weight, a) == \
            _group_roots(values, cell_w, weight, a).max(initial=0.0)


def test_closed_form_roots_satisfy_the_condition_to_round_off():
    rng = np.random.default_rng(3)
    for _ in range(300):
        values, cell_w, weight = _problem(rng)
        a = float(rng.choice([0.05, 0.3, 0.8]))
        roots = _closed_form_roots(values, cell_w, weight, a)
        ref = _group_roots(values, cell_w, weight, a)
        known = ~np.isnan(roots)
        np.testing.assert_allclose(roots[known], ref[known], rtol=1e-10, atol=0.0)
        # the closed form is exact where it is defined: on its piece the excess equals the
        # group term
        lam = roots[known & (roots > 0)]
        v, w, g = values[known & (roots > 0)], cell_w[known & (roots > 0)], \
            weight[known & (roots > 0)]
        excess = np.linalg.norm(np.maximum(v - a * lam[:, None] * w, 0.0), axis=1)
        np.testing.assert_allclose(excess, (1 - a) * lam * g, rtol=1e-9)


def test_pure_l1_and_pure_group_shares_use_their_direct_forms():
    rng = np.random.default_rng(0)
    values, cell_w, weight = np.abs(rng.normal(size=(7, 4))), np.ones((7, 4)), np.ones(7)
    assert _largest_root(values, cell_w, weight, 0.0) == \
        (np.linalg.norm(values, axis=1) / weight).max()
    assert _largest_root(values, cell_w, weight, 1.0) == values.max()
    assert _largest_root(np.zeros((0, 3)), np.ones((0, 3)), np.ones(0), 0.5) == 0.0


def test_fcgl_blocks_are_the_columns_of_each_clusters_responses():
    from xl_factorlasso.core.linear_model._lambda_max import _block_lambda
    from xl_factorlasso.core.linear_model._penalty import PenaltySpec

    rng = np.random.default_rng(11)
    n, m = 13, 4
    groups = np.array([2, 0, 1, 2, 2, 0, 1, 1, 1, 0, 2, 2, 1])
    r = np.abs(rng.normal(size=(n, m)))
    omega = rng.uniform(0.5, 2.0, size=(n, m))
    spec = PenaltySpec(geometry="block", groups=groups, group_weight=np.array([1.0, 2.0, 0.5]),
                       l1_weight=0.3, prior=np.zeros((n, m)), signs=None, nonneg=False)
    # by hand: block (g, j) holds column j of cluster g's responses, in their order
    weight = spec.block_weights()
    roots = []
    for g in range(3):
        members = np.flatnonzero(groups == g)
        for j in range(m):
            roots.append(_group_roots(r[members, j][None, :], omega[members, j][None, :],
                                      weight[g, j:j + 1], 0.3)[0])
    assert _block_lambda(r, omega, spec) == max(roots)
