"""The shortcuts that trim a small fit's fixed costs (FCGL first, then LASSO), each against the
from-scratch computation it replaces: the same numbers, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import LassoModel, make_factor_panel
from xl_factorlasso.core.linear_model import FastEngine
from xl_factorlasso.core.linear_model._block_newton import _parts
from xl_factorlasso.core.linear_model._lasso_model import _group_codes
from xl_factorlasso.core.linear_model._prox import _block_member_table


def _setup(n_clusters=None, shape=(300, 6, 24), seed=0, **kw):
    panel = make_factor_panel(*shape, seed=seed)
    model = LassoModel(model_type="FCGL", n_clusters=n_clusters, reg_lambda=0.02,
                       warmup_period=None, **kw)
    return model, model._setup(panel.x, panel.y), panel


@pytest.mark.parametrize("labels", [
    np.ones(7, dtype=np.int32),
    np.array([3, 1, 3, 2, 1, 7, 2], dtype=np.int64),
    np.array([-2, 5, 0, -2, 5], dtype=np.int64),
    np.array([4, 4, 0, 9], dtype=np.uint8),
    np.array(["b", "a", "c", "a"], dtype=object),
    np.array(["b", 1, "b", 2.5], dtype=object),
])
def test_group_codes_are_pandas_factorize_sorted(labels):
    series = pd.Series(labels, index=[f"r{i}" for i in range(len(labels))], name="cluster")
    codes, n_groups = _group_codes(series)
    expected, uniques = pd.factorize(series, sort=True)
    assert codes.dtype == np.asarray(expected).dtype
    np.testing.assert_array_equal(codes, expected)
    assert n_groups == len(uniques)


@pytest.mark.parametrize("n_clusters", [1, None])
def test_block_table_is_formed_once_and_is_the_member_table(n_clusters):
    _, setup, _ = _setup(n_clusters)
    spec = setup.spec
    table = spec.block_table()
    np.testing.assert_array_equal(
        table, _block_member_table(np.asarray(spec.groups), len(spec.group_weight),
                                   spec.prior.shape[1]))
    assert not table.flags.writeable
    engine = FastEngine(setup.stats, spec)
    assert engine._table is table  # lambda_max formed it; the engine reads the same
    np.testing.assert_array_equal(engine._unit_first,
                                  np.unique(engine.unit, return_index=True)[1])


def test_engine_unit_first_with_a_missing_code_falls_back_to_unique():
    """Codes with a gap (no cluster 1): the table's padding is no member; np.unique's answer."""
    _, setup, _ = _setup(None)
    from dataclasses import replace

    groups = np.where(np.asarray(setup.spec.groups) == 1, 0, setup.spec.groups)
    spec = replace(setup.spec, groups=groups)
    engine = FastEngine(setup.stats, spec)
    np.testing.assert_array_equal(engine._unit_first,
                                  np.unique(engine.unit, return_index=True)[1])


def _parts_from_scratch(e):
    """:class:`_Parts`' ids, members and Grams by the general construction (np.unique of the
    (cluster, pattern) keys)."""
    n_grams = len(e.gram)
    uniq, part_of = np.unique(e.unit * n_grams + e.pattern, return_inverse=True)
    order = np.argsort(part_of, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(part_of, minlength=len(uniq)))))
    members = [order[bounds[p]:bounds[p + 1]] for p in range(len(uniq))]
    residual = e._prior_residual()
    q = [residual[rows].T @ residual[rows] for rows in members]
    return uniq % n_grams, uniq // n_grams, members, q


@pytest.mark.parametrize("n_clusters", [1, None])
def test_one_gram_parts_are_the_general_construction(n_clusters):
    _, setup, _ = _setup(n_clusters)
    engine = FastEngine(setup.stats, setup.spec)
    assert len(engine.gram) == 1
    parts = _parts(engine)
    pattern, unit_of_part, members, q = _parts_from_scratch(engine)
    np.testing.assert_array_equal(parts.pattern[:-1], pattern)
    np.testing.assert_array_equal(parts.count, np.bincount(unit_of_part,
                                                           minlength=engine.n_units))
    assert len(parts.members) == len(members)
    for got, want, q_got, q_want in zip(parts.members, members, parts.q, q, strict=False):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(q_got, q_want)


def _newton_nu_reference(gram, q, kappa, nu, roots=None):
    """The block Newton on ``nu`` as first written: every array gathered by the clusters
    still going at every step, sums over parts."""
    from xl_factorlasso.core.linear_model._block_newton import _MAX_STEPS, _RTOL, _STALL

    n_batch, _, k, _ = gram.shape
    eye = np.eye(k)
    done = np.zeros(n_batch, dtype=bool)
    failed = np.zeros(n_batch, dtype=bool)
    todo = np.arange(n_batch)
    last = np.full(n_batch, np.inf)
    for _ in range(_MAX_STEPS):
        try:
            inv = np.linalg.inv(gram[todo] + nu[todo][:, None, :, None] * eye)
        except np.linalg.LinAlgError:
            failed[todo] = True
            break
        if roots is None:
            s_parts = inv @ q[todo] @ inv
        else:
            kw = np.linalg.solve(gram[todo] + nu[todo][:, None, :, None] * eye,
                                 np.swapaxes(roots[todo], 2, 3))
            s_parts = kw @ np.swapaxes(kw, 2, 3)
        s = s_parts.sum(axis=1)
        norms = np.sqrt(np.diagonal(s, axis1=1, axis2=2))
        v = nu[todo]
        phi = v * norms - kappa[todo]
        bad = ~np.isfinite(norms).all(axis=1) | (norms <= 0.0).any(axis=1)
        failed[todo[bad]] = True
        worst = (np.abs(phi) / kappa[todo]).max(axis=1)
        conv = ~bad & ((worst <= _RTOL) | ((worst <= _STALL) & (worst > 0.5 * last[todo])))
        last[todo] = worst
        done[todo[conv]] = True
        go = ~bad & ~conv
        if not go.any():
            break
        coupling = (s_parts[go] * inv[go]).sum(axis=1)
        jac = eye * norms[go][:, :, None] - (v[go] / norms[go])[:, :, None] * coupling
        try:
            step = np.linalg.solve(jac, phi[go][:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            failed[todo[go]] = True
            break
        new = v[go] - step
        nu[todo[go]] = np.where(new > 0.0, new, 0.5 * v[go])
        todo = todo[go]
    return nu, done & ~failed


def _nu_batch(n_batch, n_parts, k, seed, with_roots=False, fail_last=True):
    """A batch of secular systems: Grams, the residuals' Grams (a padding part has Q = 0),
    kappa from a point with every norm positive, and a start off the root; ``fail_last``: the
    last cluster's kappa makes a block head to zero (it fails). The batch shrinks as the
    clusters finish, at different steps."""
    rng = np.random.default_rng(seed)
    gram = np.empty((n_batch, n_parts, k, k))
    q = np.zeros((n_batch, n_parts, k, k))
    roots = np.zeros((n_batch, n_parts, k, k))
    for b in range(n_batch):
        for p in range(n_parts):
            a = rng.normal(size=(3 * k, k))
            gram[b, p] = a.T @ a / (3 * k)
            if p == n_parts - 1 and p and b % 2:
                continue  # a padding part
            r = rng.normal(size=(k, k))
            q[b, p] = r.T @ r
            roots[b, p] = r
    kappa = rng.uniform(0.2, 1.0, size=(n_batch, k))
    if fail_last:
        kappa[-1, 0] *= 1e3  # a block whose norm must vanish: nu grows without end
    nu0 = kappa * rng.uniform(0.5, 2.0, size=(n_batch, k))
    return gram, q, kappa, nu0, roots if with_roots else None


@pytest.mark.parametrize("n_batch,n_parts,k,seed,with_roots,fail_last", [
    (1, 1, 10, 0, False, True), (1, 1, 10, 0, False, False), (1, 1, 4, 1, True, False),
    (1, 2, 6, 6, False, False), (5, 1, 6, 2, False, True), (4, 2, 5, 3, False, True),
    (3, 3, 7, 4, True, True), (6, 1, 3, 5, True, True), (3, 1, 8, 7, False, False),
])
def test_newton_nu_is_the_reference_bit_for_bit(n_batch, n_parts, k, seed, with_roots,
                                                 fail_last):
    from xl_factorlasso.core.linear_model._block_newton import _solve_batch

    gram, q, kappa, nu0, roots = _nu_batch(n_batch, n_parts, k, seed, with_roots, fail_last)
    got_nu, got_done = _solve_batch(gram, q, kappa, nu0.copy(), roots)
    with np.errstate(all="ignore"):
        want_nu, want_done = _newton_nu_reference(gram, q, kappa, nu0.copy(), roots)
    np.testing.assert_array_equal(got_done, want_done)
    np.testing.assert_array_equal(got_nu, want_nu)


def test_newton_nu_batches_finish_at_different_steps():
    """The test batches above exercise what they mean to: some clusters converge, at different
    steps, and one fails."""
    gram, q, kappa, nu0, _ = _nu_batch(5, 1, 6, 2)
    from xl_factorlasso.core.linear_model._block_newton import _solve_batch

    _, done = _solve_batch(gram, q, kappa, nu0.copy())
    assert done[:-1].all() and not done[-1]
    gram, q, kappa, nu0, _ = _nu_batch(1, 1, 10, 0, fail_last=False)
    assert _solve_batch(gram, q, kappa, nu0.copy())[1].all()


def _block_norms_loop(d, groups, w):
    """The FCGL penalty's group term as first written: a loop over the clusters."""
    group = 0.0
    for g, weight in enumerate(w):
        group += weight * np.linalg.norm(d[groups == g], axis=0).sum()
    return float(group)


@pytest.mark.parametrize("seed", range(6))
def test_block_norms_in_one_pass_are_the_loop_over_clusters(seed):
    from xl_factorlasso.core.linear_model._penalty import _weighted_block_norms

    rng = np.random.default_rng(seed)
    for n, m, n_groups in ((50, 10, 10), (500, 30, 133), (40, 1, 7), (300, 2, 1), (9, 5, 9),
                           (200, 3, 4)):
        groups = np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, n - n_groups)])
        rng.shuffle(groups)
        d = rng.normal(size=(n, m)) * (rng.random((n, m)) < 0.6) * 10.0 ** rng.integers(-6, 6)
        w = rng.random(n_groups)
        assert _weighted_block_norms(d, groups, w) == _block_norms_loop(d, groups, w)


def test_fcgl_penalty_value_is_the_loop_over_clusters():
    from xl_factorlasso.core.linear_model._penalty import penalty_value

    model, setup, panel = _setup(None, l1_weight=0.3)
    coef = model.fit(panel.x, panel.y).coef_.to_numpy()
    spec = setup.spec
    assert len(spec.group_weight) > 1
    d = coef - spec.prior
    group = _block_norms_loop(d, np.asarray(spec.groups), spec.group_weight)
    want = float(0.02 * (0.7 * group + 0.3 * np.abs(d).sum()))
    assert penalty_value(coef, spec, 0.02) == want


@pytest.mark.parametrize("n_batch,n_parts,k,seed,with_roots,fail_last", [
    (1, 1, 10, 0, False, True), (1, 1, 10, 0, False, False), (5, 1, 6, 2, False, True),
    (4, 2, 5, 3, False, True), (3, 3, 7, 4, True, True), (6, 1, 3, 5, True, True),
])
def test_runaway_clusters_fail_early_and_change_no_converged_cluster(n_batch, n_parts, k, seed,
                                                                     with_roots, fail_last,
                                                                     monkeypatch):
    """block_newton's runaway rule: a cluster whose nu has grown 1e8-fold fails at once; the
    clusters that converge do so with the same nu, bit for bit, and the same ones fail."""
    from xl_factorlasso.core.linear_model._block_newton import _RUNAWAY, _solve_batch

    inv, steps = np.linalg.inv, []

    def counted(a):
        steps.append(len(a))
        return inv(a)

    monkeypatch.setattr(np.linalg, "inv", counted)
    gram, q, kappa, nu0, roots = _nu_batch(n_batch, n_parts, k, seed, with_roots, fail_last)
    nu, done = _solve_batch(gram, q, kappa, nu0.copy(), roots)
    n_steps = len(steps)
    nu_r, done_r = _solve_batch(gram, q, kappa, nu0.copy(), roots, runaway=True)
    np.testing.assert_array_equal(done_r, done)
    np.testing.assert_array_equal(nu_r[done], nu[done])
    if fail_last:  # it stopped earlier, past the limit
        assert len(steps) - n_steps < n_steps
        assert (nu_r[-1] / nu0[-1]).max() > _RUNAWAY


@pytest.mark.parametrize("kw", [{}, {"nonneg": True}, {"model_type": "HCGL"},
                                {"model_type": "GROUP_LASSO"}])
def test_group_prox_without_l1_share_skips_a_zero_threshold(kw):
    """The engine's own prox of a group geometry without an L1 share (no soft threshold) is the
    prox through the thresholds formed from its steps, bit for bit (given steps take the
    general path)."""
    panel = make_factor_panel(300, 6, 24, seed=3)
    kw = {"model_type": "FCGL", **kw}
    if kw["model_type"] == "GROUP_LASSO":
        kw["group_data"] = pd.Series([f"g{i % 4}" for i in range(24)], index=panel.y.columns)
    model = LassoModel(reg_lambda=0.02, warmup_period=None, **kw)
    setup = model._setup(panel.x, panel.y)
    engine = FastEngine(setup.stats, setup.spec)
    assert engine.a == 0.0 and engine.geometry != "cell"
    rng = np.random.default_rng(0)
    for lam in (0.02, 0.005):
        z = engine.prior + rng.normal(scale=0.3, size=engine.prior.shape)
        z[0, 0] = -0.0
        want = engine.prox(z, lam, step=engine.step)  # (thresholds formed, not cached)
        got = engine.prox(z, lam)
        np.testing.assert_array_equal(got, want)
        assert np.array_equal(np.signbit(got), np.signbit(want))
