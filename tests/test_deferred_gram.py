"""Many factors on fewer rows: the deferred Gram (``SufficientStats``, ``_working_set``).

With one mask pattern, more than ``DEFER_GRAM_MIN`` factors and more factors than rows, the
statistics keep the root ``W^(1/2) X`` instead of the M x M Gram; products go through it and the
working set forms only the blocks of its columns. The references: the same statistics with the
Gram formed (``DEFER_GRAM_MIN`` raised past the panel's width, so nothing is deferred),
scikit-learn's ``Lasso`` on the raw centred design, and CVXPY.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Lasso

from tests.test_working_set import _panel  # factors with a common component, sparse truth
from xl_factorlasso import LassoModel, LassoModelCV
from xl_factorlasso.core.linear_model import FastEngine, SufficientStats, _preparation
from xl_factorlasso.core.linear_model._preparation import prepare_panel


def _stats(x, y, span=None, normalization="sample"):
    return SufficientStats.from_panel(prepare_panel(x, y, span=span), normalization)


@pytest.fixture
def formed(monkeypatch):
    """Switch the deferral off (the statistics as they were before it)."""

    def switch():
        monkeypatch.setattr(_preparation, "DEFER_GRAM_MIN", 10**9)

    return switch


@pytest.mark.parametrize("span, normalization", [(None, "sample"), (26, "sample"),
                                                 (None, "weight_sum")])
def test_deferred_statistics_equal_the_formed_ones(span, normalization, formed):
    x, y = _panel(t_rows=120, m=650, n=3)
    x.iloc[:, 5] = 0.0  # a zero factor: exact zeros in both
    lazy = _stats(x, y, span, normalization)
    assert lazy.deferred and lazy.root.shape == (len(x) - (span is not None), 650)
    formed()
    full = _stats(x, y, span, normalization)
    assert not full.deferred and full.root is None
    g = full.gram[0]
    scale = np.abs(g).max()
    np.testing.assert_allclose(lazy.gram_diagonal()[0], np.diagonal(g), rtol=1e-12)
    coef = np.random.default_rng(1).standard_normal((3, 650))
    np.testing.assert_allclose(lazy.gram_times(coef), full.gram_times(coef), rtol=0,
                               atol=1e-10 * scale * np.abs(coef).sum(axis=1).max())
    np.testing.assert_allclose(lazy.loss_terms(coef), full.loss_terms(coef), rtol=1e-10)
    for name in ("xty", "yty", "xw", "yw", "mass"):
        np.testing.assert_array_equal(getattr(lazy, name), getattr(full, name))
    assert np.array_equal(lazy.zero_cells(), full.zero_cells()) and lazy.zero_cells()[:, 5].all()
    sub = lazy.responses(np.array([2, 0]))
    assert sub.deferred and np.array_equal(sub.xty, lazy.xty[[2, 0]])
    assert sub.gram is lazy.__dict__["_gram"]  # a subset's reading forms the source's Gram
    # read whole, the deferred Gram is formed once, from the root, and then kept
    np.testing.assert_allclose(lazy.gram[0], g, rtol=0, atol=1e-12 * scale)
    assert not lazy.deferred and lazy.gram is lazy.gram
    assert not lazy.gram[0][5].any() and not lazy.gram[0][:, 5].any()


@pytest.mark.parametrize("shape, ragged", [((700, 650, 2), False), ((120, 400, 2), False),
                                           ((120, 650, 3), True)])
def test_not_deferred(shape, ragged):
    """Tall panels (the Gram is the smaller), up to 600 factors (the spectral engine), and
    ragged panels (a Gram per mask pattern) form their Grams as before."""
    t_rows, m, n = shape
    x, y = _panel(t_rows, m, n)
    if ragged:
        y.iloc[:10, 1] = np.nan
    stats = _stats(x, y)
    assert not stats.deferred and stats.root is None


@pytest.mark.parametrize("fraction", [0.3, 0.15])
def test_sparse_fit_equals_scikit_learn_and_never_forms_the_gram(fraction):
    """A sparse answer: the working set certifies it from blocks of the root (the 650 x 650
    Gram is never formed, its products go through X), and it is scikit-learn's minimiser on
    the raw centred design (``alpha = lambda / 2``)."""
    x, y = _panel(t_rows=120, m=650, n=3, seed=3)
    kw = dict(model_type="LASSO", warmup_period=None)
    model = LassoModel(**kw)
    lam = fraction * model.lambda_max(x, y)
    model.set_params(reg_lambda=lam)
    setup = model._setup(x, y)
    solution = model._solver(setup, lam).solve(lam)
    model._install(setup, solution, lam)
    assert setup.stats.deferred  # after the solve, its certificate and the diagnostics
    assert solution.solver == "fast" and solution.gap <= 1e-8
    xc = x.to_numpy() - x.to_numpy().mean(axis=0)
    for name in y.columns:
        yc = y[name].to_numpy() - y[name].mean()
        peer = Lasso(alpha=lam / 2, fit_intercept=False, tol=1e-12, max_iter=200_000).fit(xc, yc)
        np.testing.assert_allclose(model.coef_.loc[name].to_numpy(), peer.coef_, rtol=0,
                                   atol=1e-7)
    fitted = model.predict(x)
    resid = y.to_numpy() - fitted.to_numpy()
    np.testing.assert_allclose(model.residual_variance_.to_numpy(), resid.var(axis=0),
                               rtol=1e-8)


@pytest.mark.parametrize("fraction", [0.05, 0.02])
def test_whole_problem_newton_from_blocks(fraction, formed):
    """A denser answer on 100 rows (87-94 loadings): the working set hands over to the whole
    problem, whose Newton systems come from the root's blocks (supports of more cells than
    rows are singular and never formed): still no 700 x 700 Gram, and the formed-Gram fit's
    minimiser."""
    x, y = _panel(t_rows=100, m=700, n=1, active=30, seed=4)
    model = LassoModel(warmup_period=None)
    lam = fraction * model.lambda_max(x, y)
    setup = model._setup(x, y)
    solution = model._solver(setup, lam).solve(lam)
    assert setup.stats.deferred and solution.solver == "fast" and solution.gap <= 1e-8
    assert 80 <= (solution.coef != 0).sum() <= 100
    formed()
    full = LassoModel(warmup_period=None, reg_lambda=lam).fit(x, y)
    assert full.solver_ == "fast"
    np.testing.assert_allclose(solution.coef[0], full.coef_.to_numpy()[0], rtol=0, atol=1e-7)


def test_gram_blocks_grow_and_restart():
    """GramBlocks: a block is the Gram's submatrix in the order asked for; new columns add
    their products to the kept block; past the limit it restarts from the request, and a
    request larger than the limit returns None."""
    root = np.random.default_rng(0).standard_normal((30, 50))
    g = root.T @ root
    blocks = _preparation.GramBlocks(root, limit=20)
    first = blocks(np.array([3, 1, 7]))
    np.testing.assert_allclose(first, g[np.ix_([3, 1, 7], [3, 1, 7])], rtol=1e-12)
    rows = np.array([[1, 9, 3], [7, 12, 2]])  # (2, 3): one block per row
    np.testing.assert_allclose(blocks(rows), g[rows[:, :, None], rows[:, None, :]], rtol=1e-12)
    assert list(blocks.cols) == [1, 3, 7, 2, 9, 12]  # kept, grown by the new ones
    wide = np.arange(30, 48)  # 18 new: past the limit with the 6 kept, restart from them
    np.testing.assert_allclose(blocks(wide), g[np.ix_(wide, wide)], rtol=1e-12)
    assert sorted(blocks.cols) == list(wide)
    assert blocks(np.arange(21)) is None
    # past a quarter of T M^2 multiply-adds in blocks (half a SYRK), the whole Gram instead
    blocks = _preparation.GramBlocks(root, limit=25)  # budget 30 * 50^2 / 4 = 18750
    assert blocks(np.arange(20)) is not None  # 30 * 20 * 20 = 12000
    assert blocks(np.arange(25)) is not None  # + 30 * 5 * 25 = 3750: 15750, within
    assert blocks(np.arange(20, 45)) is None  # a restart on 25: + 18750, past the budget
    assert blocks(np.arange(3)) is None  # (exhausted: every later request)


@pytest.mark.parametrize("kwargs", [
    dict(model_type="LASSO"),
    dict(model_type="LASSO", nonneg=True),
    dict(model_type="LASSO", span=26),
    dict(model_type="LASSO", loss_normalization="weight_sum"),
    dict(model_type="GROUP_LASSO"),
    dict(model_type="FACTOR_CLUSTER_GROUP_LASSO"),
    dict(model_type="HIERARCHICAL_CLUSTER_GROUP_LASSO", l1_weight=0.1),
])
@pytest.mark.parametrize("fraction", [0.2, 0.02])
def test_fits_equal_the_formed_gram(kwargs, fraction, formed):
    """Every model type on a wide single-pattern panel, sparse and dense answers (where the
    working set hands over to the whole problem, or the geometry has none, the Gram is formed
    on first use): the same minimiser as with the Gram formed up front."""
    x, y = _panel(t_rows=90, m=620, n=4, seed=5)
    kw = dict(warmup_period=None, **kwargs)
    if kw["model_type"] == "GROUP_LASSO":
        kw["group_data"] = pd.Series(["a", "a", "b", "b"], index=y.columns)
    lam = fraction * LassoModel(**kw).lambda_max(x, y)
    lazy = LassoModel(reg_lambda=lam, **kw).fit(x, y)
    formed()
    full = LassoModel(reg_lambda=lam, **kw).fit(x, y)
    assert lazy.duality_gap_ <= 1e-8 and full.duality_gap_ <= 1e-8
    scale = np.abs(full.coef_.to_numpy()).max()
    np.testing.assert_allclose(lazy.coef_.to_numpy(), full.coef_.to_numpy(), rtol=0,
                               atol=1e-6 * scale)
    np.testing.assert_allclose(lazy.objective_value_, full.objective_value_, rtol=1e-9)
    np.testing.assert_allclose(lazy.r2_.to_numpy(), full.r2_.to_numpy(), rtol=0, atol=1e-9)
    # the fitted model keeps the root, not a Gram formed during the fit, and still evaluates
    assert lazy._fit_setup_.stats.deferred
    np.testing.assert_allclose(lazy.objective(lazy.coef_), lazy.objective_value_, rtol=1e-12)


def test_default_penalty_and_cvxpy(formed):
    """The default penalty (the exact path, which forms the Gram) and the CVXPY engine (its
    formulation forms it too) on a deferred panel: the formed-Gram answers."""
    x, y = _panel(t_rows=40, m=610, n=2, seed=7)
    answers = {}
    for label in ("lazy", "full"):
        if label == "full":
            formed()
        default = LassoModel(warmup_period=None).fit(x, y)
        lam = 0.2 * LassoModel().lambda_max(x, y)
        ref = LassoModel(warmup_period=None, reg_lambda=lam, engine="cvxpy").fit(x, y)
        answers[label] = (default, ref)
        assert default.duality_gap_ <= 1e-8 and ref.duality_gap_ <= 1e-8
    for a, b in zip(answers["lazy"], answers["full"], strict=True):
        np.testing.assert_allclose(a.objective_value_, b.objective_value_, rtol=1e-8)
        np.testing.assert_allclose(a.coef_.to_numpy(), b.coef_.to_numpy(), rtol=0,
                                   atol=1e-5 * np.abs(b.coef_.to_numpy()).max())


def test_cross_validation_on_a_deferred_panel(formed):
    """LassoModelCV prepares each training window (each deferred): the same scores."""
    x, y = _panel(t_rows=150, m=640, n=2, seed=9)
    grid = np.array([0.3, 0.1, 0.03]) * LassoModel().lambda_max(x, y)
    lazy = LassoModelCV(grid, n_splits=3, base_model=LassoModel(warmup_period=None),
                        refit=False).fit(x, y)
    formed()
    full = LassoModelCV(grid, n_splits=3, base_model=LassoModel(warmup_period=None),
                        refit=False).fit(x, y)
    assert not lazy.fold_errors_ and lazy.cv_scores_.notna().all().all()
    np.testing.assert_allclose(lazy.cv_scores_.to_numpy(), full.cv_scores_.to_numpy(),
                               rtol=1e-8)


def test_engine_products_through_the_root():
    """The engine of deferred statistics: its products, diagonal and step bound are those of
    the Gram (formed here for the check, after the engine's own products)."""
    x, y = _panel(t_rows=60, m=700, n=2, seed=2)
    stats = _stats(x, y)
    setup = LassoModel(warmup_period=None)._setup(x, y)
    engine = FastEngine(stats, setup.spec)
    coef = np.random.default_rng(4).standard_normal((2, 700))
    products = engine._gram_times(coef)
    step = engine.step
    assert stats.deferred and "gram" not in vars(engine)
    g = stats.gram[0]
    np.testing.assert_allclose(products, coef @ g, rtol=0, atol=1e-10 * np.abs(coef @ g).max())
    jac = 1.0 / np.sqrt(np.diagonal(g))
    top = np.linalg.eigvalsh(g * jac[:, None] * jac[None, :])[-1]
    # a safe step: the bound (Lanczos, rounded up) is at least the top eigenvalue
    bound = 1.0 / (step[0] * (2.0 / engine.t_rows) * np.diagonal(g))
    assert np.all(bound >= top * (1 - 1e-9)) and np.all(bound <= top * 1.05)


@pytest.mark.parametrize("order", ["F", "C"])
def test_root_products_skip_zero_columns(order):
    """``root_times``: ``R'(R b)`` through the nonzero columns of ``b`` only (a sparse ``b`` on
    a column-major root), none at all for ``b = 0``; the same numbers as the whole product."""
    rng = np.random.default_rng(7)
    root = np.asarray(rng.standard_normal((80, 400)), order=order)
    full = root.T @ root
    dense = rng.standard_normal((2, 400))
    sparse = np.zeros((2, 400))
    sparse[0, [3, 50, 399]] = [1.0, -2.0, 0.5]
    sparse[1, 7] = 3.0  # (the columns of either row: 4 of 400)
    one_row = np.zeros((1, 400))
    one_row[0, :90] = rng.standard_normal(90)  # 90 of 400 columns: still gathered
    for coef in (dense, sparse, one_row):
        got = _preparation.root_times(root, coef)
        np.testing.assert_allclose(got, coef @ full, rtol=0,
                                   atol=1e-12 * np.abs(coef).sum() * np.abs(full).max())
    zero = _preparation.root_times(root, np.zeros((3, 400)))
    assert zero.shape == (3, 400) and not zero.any()
    nan = sparse.copy()
    nan[1, 9] = np.nan  # a NaN reaches the product (a refused Newton system's cells)
    assert np.isnan(_preparation.root_times(root, nan)).all(axis=1).tolist() == [False, True]


def test_engine_keeps_its_last_product():
    """The engine's product at the point it was last asked about is the kept one, for the
    engine and its views, a copy each time (a caller may change it), and a new point is
    computed: every answer equals ``coef @ G`` with the Gram formed."""
    x, y = _panel(t_rows=60, m=700, n=2, seed=2)
    stats = _stats(x, y)
    setup = LassoModel(warmup_period=None)._setup(x, y)
    engine = FastEngine(stats, setup.spec)
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, 700)), np.zeros((2, 700))
    b[:, :20] = rng.standard_normal((2, 20))
    first = engine._gram_times(a)
    first[:] = 0.0  # the caller's copy
    again = engine._gram_times(a.copy())
    view = engine._rows_view(np.array([False, True]))
    row = view._gram_times(a[1:])
    other = engine._gram_times(b)
    g = stats.gram[0]
    for coef, got in ((a, again), (a[1:], row), (b, other)):
        np.testing.assert_allclose(got, coef @ g, rtol=0, atol=1e-10 * np.abs(coef @ g).max())
    assert engine._last_product[0] is not b and np.array_equal(engine._last_product[0], b)


def test_gram_blocks_symmetric_as_they_grow_and_loss_through_few_columns():
    """A grown block (the new columns' cross products, their own block by SYRK) is the Gram's
    submatrix and exactly symmetric; the loss of a sparse coefficient matrix (its fit through
    the few nonzero columns) and of zero equal the formed Gram's."""
    rng = np.random.default_rng(11)
    root = np.asfortranarray(rng.standard_normal((40, 300)))
    g = root.T @ root
    blocks = _preparation.GramBlocks(root, limit=150)
    for cols in (np.array([5, 80, 2]), np.array([5, 80, 2, 17, 299, 150, 42]),
                 np.arange(0, 300, 3)):
        block = blocks(cols)
        np.testing.assert_allclose(block, g[np.ix_(cols, cols)], rtol=0,
                                   atol=1e-12 * np.abs(g).max())
        assert np.array_equal(block, block.T)
    x, y = _panel(t_rows=120, m=650, n=3)
    lazy = _stats(x, y)
    full = lazy.gram[0]
    coef = np.zeros((3, 650))
    coef[0, [1, 100]] = [0.3, -0.2]
    coef[2, 7] = 1.5
    quad = np.einsum("nm,mk,nk->n", coef, full, coef)
    expected = lazy.yty - 2.0 * np.einsum("nm,nm->n", coef, lazy.xty) + quad
    np.testing.assert_allclose(lazy.loss_terms(coef), expected, rtol=1e-12)
    np.testing.assert_array_equal(lazy.loss_terms(np.zeros((3, 650))), lazy.yty)


def test_working_set_takes_the_kept_block_in_its_own_order():
    """``GramBlocks.own_order``: where the kept block holds exactly the columns asked for (a
    working set's growing columns) it is handed over itself, in its own column order, and is
    the Gram's submatrix there; a restricted engine on it (``symmetric=True``) has the Gram
    the averaging would give, bit for bit. Otherwise a block of the asked columns."""
    from xl_factorlasso.core.linear_model._working_set import _columns_engine

    x, y = _panel(t_rows=60, m=700, n=1, seed=6)
    stats = _stats(x, y)
    setup = LassoModel(warmup_period=None)._setup(x, y)
    engine = FastEngine(stats, setup.spec)
    first = np.array([3, 40, 41, 600])
    engine._gram_columns(first)
    grown = np.sort(np.concatenate([first, [7, 650, 2]]))
    restricted, order = _columns_engine(engine, grown)
    assert sorted(order) == list(grown) and list(order[:4]) == list(first)
    assert np.shares_memory(restricted.gram, engine._blocks.block)  # (no copy)
    g = np.asarray(stats.root).T @ np.asarray(stats.root)
    np.testing.assert_allclose(restricted.gram[0], g[np.ix_(order, order)], rtol=0,
                               atol=1e-12 * np.abs(g).max())
    block = restricted.gram[0]
    assert np.array_equal(0.5 * (block + block.T), block)
    some = np.array([2, 40])  # fewer than the kept block: its sub-block, in the asked order
    cols, sub = engine._blocks.own_order(some)
    assert list(cols) == [2, 40] and not np.shares_memory(sub, engine._blocks.block)
    np.testing.assert_allclose(sub, g[np.ix_(some, some)], rtol=0, atol=1e-12 * np.abs(g).max())


def test_working_set_near_columns_from_scratch():
    """``_violations``' second part: the columns where a zero cell's pull is within a tenth of
    the threshold of breaking its condition (``|grad_j| > 0.9 lambda`` for a LASSO without a
    box), from the formed Gram; the strict scores are positive only where ``|grad_j| >
    lambda``. The working set's answer with them stays scikit-learn's (nonneg: ``positive``)."""
    from xl_factorlasso.core.linear_model._working_set import _NEAR, _violations

    x, y = _panel(t_rows=120, m=650, n=1, seed=8)
    model = LassoModel(warmup_period=None)
    lam = 0.3 * model.lambda_max(x, y)
    setup = model._setup(x, y)
    engine = FastEngine(setup.stats, setup.spec)
    coef = np.zeros((1, 650))
    scores, near = _violations(engine, coef, lam)
    g = setup.stats.gram[0]
    grad = (2.0 / engine.t_rows) * (coef @ g - setup.stats.xty)[0]
    pull = np.abs(grad)
    clear = np.abs(pull - (1 - _NEAR) * lam) > 1e-9 * lam  # (away from the margin's edge)
    assert np.array_equal(near[clear], (pull > (1 - _NEAR) * lam)[clear])
    edge = np.abs(pull - lam) <= 1e-8 * lam
    assert np.array_equal((scores > 0)[~edge], (pull > lam)[~edge])
    assert near.sum() > (scores > 0).sum() > 0
    xc = x.to_numpy() - x.to_numpy().mean(axis=0)
    yc = y.iloc[:, 0].to_numpy() - y.iloc[:, 0].mean()
    for nonneg in (False, True):
        kw = dict(warmup_period=None, reg_lambda=0.1 * lam / 0.3, nonneg=nonneg)
        fit = LassoModel(**kw).fit(x, y)
        assert fit.solver_ == "fast" and fit.duality_gap_ <= 1e-8
        peer = Lasso(alpha=kw["reg_lambda"] / 2, fit_intercept=False, tol=1e-12,
                     max_iter=200_000, positive=nonneg).fit(xc, yc)
        np.testing.assert_allclose(fit.coef_.to_numpy()[0], peer.coef_, rtol=0, atol=1e-7)
