"""``LassoModel.fit_reg_lambda_path``: one preparation, one warm-started certified solver.

Every path model must be the fit a fresh :meth:`LassoModel.fit` at its ``reg_lambda`` gives:
both are certified (relative duality gap <= 1e-8), so their objectives agree to 1e-8 relative
and, the problems being strongly convex here, their coefficients to ~1e-6. Anchors outside the
product: factorlasso 1.0.6's method of the same name (live) and scikit-learn's ``lasso_path``
(plain LASSO, one path per response; FCGL with one cluster = the multi-task path), each
evaluated with OUR objective.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import LassoModel
from xl_factorlasso.core._base import clone
from xl_factorlasso.core.exceptions import SolveError

# fractions of lambda_max: unsorted, with duplicates, two at or above lambda_max
FRACTIONS = [0.1, 2.0, 0.01, 0.1, 0.4, 1.0, 0.002, 0.01]


def panel(seed=4, T=140, M=5, N=12, ragged=True):
    """Sparse loadings, two response blocks; ragged histories and a missing factor cell."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2021-01-03", periods=T, freq="W")
    x = pd.DataFrame(rng.standard_normal((T, M)), index=idx, columns=[f"f{j}" for j in range(M)])
    b = rng.standard_normal((N, M)) * (rng.random((N, M)) < 0.5)
    b[N // 2:] += 0.8 * np.sign(rng.standard_normal(M))  # a second cluster
    y = pd.DataFrame(x.to_numpy() @ b.T + rng.standard_normal((T, N)), index=idx,
                     columns=[f"y{i}" for i in range(N)])
    if ragged:
        y.iloc[:30, 1] = np.nan  # late start
        y.iloc[60:64, 4] = np.nan  # a gap
        y.iloc[-15:, 7] = np.nan  # stops early
        x.iloc[9, 2] = np.nan  # partly missing factor row
    return x, y


def signs_and_prior(x, y):
    signs = pd.DataFrame(np.nan, index=y.columns, columns=x.columns)
    signs.iloc[0, 0], signs.iloc[1, 1], signs.iloc[2, 2] = 1, 0, -1
    signs.iloc[3, :] = 1
    prior = pd.DataFrame(0.0, index=y.columns, columns=x.columns)
    prior.iloc[0, 0], prior.iloc[4, 1], prior.iloc[3, 3] = 0.3, -0.2, 0.25
    return signs, prior


def config(name, x, y) -> dict:
    signs, prior = signs_and_prior(x, y)
    groups = pd.Series([i % 3 for i in range(y.shape[1])], index=y.columns)
    return {
        "lasso": dict(model_type="LASSO"),
        "lasso_signs_prior": dict(model_type="LASSO", factors_beta_loading_signs=signs,
                                  factors_beta_prior=prior, span=52),
        "group_lasso": dict(model_type="GROUP_LASSO", group_data=groups),
        "hcgl": dict(model_type="HCGL"),
        "fcgl_one": dict(model_type="FCGL", n_clusters=1),
        "fcgl_found": dict(model_type="FCGL", n_clusters=3),
        "hcgl_sparse_group": dict(model_type="HCGL", l1_weight=0.3,
                                  factors_beta_loading_signs=signs, factors_beta_prior=prior),
        "unilasso": dict(model_type="UNILASSO"),
        "cooperative": dict(model_type="COOPERATIVE_GROUP_LASSO", group_data=groups),
        "auto_signs_adaptive": dict(model_type="HCGL", auto_sign_constraints=True,
                                    auto_sign_adaptive_weights=True, apply_ols_prior=True),
    }[name]


def lambdas_for(model, x, y, fractions=FRACTIONS) -> list[float]:
    lam_max = model.lambda_max(x, y)
    assert lam_max > 0
    return [f * lam_max for f in fractions]


def fitted_names(model) -> set[str]:
    return {k for k in vars(model) if k.endswith("_") and not k.startswith("_")}


def assert_same_fit(path_model, fresh, coef_atol=1e-6):
    """``path_model`` is ``fresh`` up to what certification allows."""
    assert path_model.reg_lambda == fresh.reg_lambda
    assert fitted_names(path_model) == fitted_names(fresh)
    assert path_model.solver_status_ == "optimal"
    assert path_model.duality_gap_ <= 1e-8
    f_path, f_fresh = path_model.objective_value_, fresh.objective_value_
    assert abs(f_path - f_fresh) <= 1e-8 * max(f_path, f_fresh)
    # the same objective function: each model evaluates the other's point alike
    np.testing.assert_allclose(path_model.objective(fresh.coef_), f_fresh, rtol=1e-12)
    assert path_model.reg_lambda_max_ == pytest.approx(fresh.reg_lambda_max_, rel=1e-12)
    pd.testing.assert_frame_equal(path_model.coef_, fresh.coef_, check_exact=False, rtol=0,
                                  atol=coef_atol)
    for name in ("alpha_const_", "intercept_", "r2_", "residual_variance_"):
        pd.testing.assert_series_equal(getattr(path_model, name), getattr(fresh, name),
                                       check_exact=False, rtol=0, atol=coef_atol)
    pd.testing.assert_series_equal(path_model.total_variance_, fresh.total_variance_)
    pd.testing.assert_series_equal(path_model.n_obs_, fresh.n_obs_)
    for name in ("clusters_", "derived_signs_", "sign_penalty_weights_",
                 "effective_beta_prior_", "detected_signs_"):
        a, b = getattr(path_model, name), getattr(fresh, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert a.equals(b), name
    assert path_model.effective_span_ == fresh.effective_span_


CONFIGS = ["lasso", "lasso_signs_prior", "group_lasso", "hcgl", "fcgl_one", "fcgl_found",
           "hcgl_sparse_group", "unilasso", "cooperative", "auto_signs_adaptive"]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_path_model_is_a_fresh_fit(name):
    x, y = panel()
    template = LassoModel(**config(name, x, y))
    lambdas = lambdas_for(template, x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short responses: the same warning for both
        path = template.fit_reg_lambda_path(x, y, lambdas)
        fresh = [clone(template).set_params(reg_lambda=lam).fit(x, y) for lam in lambdas]
    assert len(path) == len(lambdas)
    assert len({id(m) for m in path}) == len(path)  # duplicates are separate models
    for model, lam, ref in zip(path, lambdas, fresh, strict=True):
        assert model.reg_lambda == lam  # the input order, duplicates included
        assert_same_fit(model, ref)
    if name == "fcgl_found":
        assert path[0].clusters_.nunique() == 3
    if name == "fcgl_one":
        assert path[0].clusters_.nunique() == 1
    # the grid spans the path: the prior at 2 lambda_max, more cells moved off it lower down
    moved = [int((m.coef_ != path[1].coef_).to_numpy().sum()) for m in path]
    assert moved[1] == moved[5] == 0 and 0 < moved[0] <= moved[2] <= moved[6]


def test_duplicates_share_one_answer_and_own_their_state():
    x, y = panel()
    template = LassoModel(model_type="HCGL", l1_weight=0.2)
    lambdas = lambdas_for(template, x, y)
    path = template.fit_reg_lambda_path(x, y, np.asarray(lambdas))  # any sequence of numbers
    first, again = path[0], path[3]  # both 0.1 lambda_max
    pd.testing.assert_frame_equal(first.coef_, again.coef_)
    assert first.n_iter_ == again.n_iter_
    first.coef_.iloc[0, 0] = 123.0  # a user's edit of one model stays in that model
    assert again.coef_.iloc[0, 0] != 123.0
    assert first.coef_ is not again.coef_ and first.r2_ is not again.r2_
    restored = pickle.loads(pickle.dumps(path[2]))  # a path model travels like a fit
    np.testing.assert_array_equal(restored.predict(x.fillna(0.0)), path[2].predict(x.fillna(0.0)))
    assert restored.objective(path[2].coef_) == pytest.approx(path[2].objective_value_, rel=1e-14)


def test_warm_starts_save_iterations():
    """Descending order with warm starts: the path needs fewer engine iterations than cold
    fits at the same values (the engine's only path-dependent input is ``coef_init``)."""
    x, y = panel(seed=9, T=300, M=8, N=30, ragged=False)
    template = LassoModel(model_type="FCGL", n_clusters=1, warmup_period=None)
    lambdas = lambdas_for(template, x, y, np.geomspace(1.0, 1e-3, 25))
    path = template.fit_reg_lambda_path(x, y, lambdas)
    cold = [clone(template).set_params(reg_lambda=lam).fit(x, y) for lam in lambdas]
    assert sum(m.n_iter_ for m in path) < sum(m.n_iter_ for m in cold)
    for model, ref in zip(path, cold, strict=True):
        assert_same_fit(model, ref)


@pytest.mark.parametrize("name", ["lasso_signs_prior", "hcgl_sparse_group"])
def test_at_and_above_lambda_max_the_prior(name):
    x, y = panel()
    template = LassoModel(**config(name, x, y))
    lam_max = template.lambda_max(x, y)
    path = template.fit_reg_lambda_path(x, y, [lam_max, 3 * lam_max, 0.5 * lam_max])
    _, prior = signs_and_prior(x, y)
    for model in path[:2]:
        assert model.solver_ == "closed form"
        assert model.n_iter_ == 0
        pd.testing.assert_frame_equal(model.coef_, prior, check_names=False)
        assert model.reg_lambda_max_ == lam_max
    assert not path[2].coef_.equals(prior)


def snapshot(model) -> dict:
    return {k: v for k, v in vars(model).items()}


def assert_unchanged(model, before, coef_before):
    after = snapshot(model)
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] is value, key
    if coef_before is not None:
        np.testing.assert_array_equal(model.coef_.to_numpy(), coef_before)


def test_self_unchanged_on_success_and_on_error(monkeypatch):
    x, y = panel()
    model = LassoModel(model_type="HCGL", reg_lambda=0.02).fit(x, y)
    before, coef = snapshot(model), model.coef_.to_numpy().copy()
    path = model.fit_reg_lambda_path(x, y, [0.5, 0.01], span=30)
    assert_unchanged(model, before, coef)
    assert path[1].effective_span_ == 30 and path[1].span is None  # as fit(span=30)
    fresh = LassoModel(model_type="HCGL", reg_lambda=0.01).fit(x, y, span=30)
    assert_same_fit(path[1], fresh)
    bad = [[0.1, -1.0], [0.1, np.nan], [0.1, np.inf], [], "0.1", 0.1, [0.1, True], [0.1, "a"]]
    for lambdas in bad:
        with pytest.raises(ValueError, match="reg_lambda"):
            model.fit_reg_lambda_path(x, y, lambdas)
        assert_unchanged(model, before, coef)
    # a solve that cannot be certified mid-path (forced: with max_iter=1 the warm solve from
    # the first lambda's point fails, but its cold retry from the prior certifies)
    from xl_factorlasso.core.linear_model import _certified

    original = _certified.CertifiedSolver.solve

    def second_fails(self, reg_lambda, coef_init=None):
        if coef_init is not None:
            raise SolveError("not certified (forced)", [("fast", "forced")], gap=1.0)
        return original(self, reg_lambda, coef_init=coef_init)

    monkeypatch.setattr(_certified.CertifiedSolver, "solve", second_fails)
    strict = LassoModel(model_type="HCGL", engine="fast", engine_params={"max_iter": 1})
    strict_before = snapshot(strict)
    lam_max = strict.lambda_max(x, y)
    with pytest.raises(SolveError, match="forced"):
        strict.fit_reg_lambda_path(x, y, [0.5 * lam_max, 1e-3 * lam_max])
    assert_unchanged(strict, strict_before, None)
    assert not hasattr(strict, "coef_")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="y0"):  # bad data: fit's message
        model.fit_reg_lambda_path(x, y.assign(y0=np.inf), [0.1])
    assert_unchanged(model, before, coef)


def test_cluster_mean_budgets_fit_each_value():
    """Budgets from a first pass at each lambda: a fresh fit per value, same answers."""
    x, y = panel(seed=12)
    template = LassoModel(model_type="HCGL", n_clusters=2, apply_ols_prior=True,
                          expert_prior_budget_rule="cluster_mean")
    lambdas = [2e-2, 2e-3, 2e-2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = template.fit_reg_lambda_path(x, y, lambdas)
        fresh = [clone(template).set_params(reg_lambda=lam).fit(x, y) for lam in lambdas]
    for model, ref in zip(path, fresh, strict=True):
        assert_same_fit(model, ref)
        assert model.budget_first_pass_coef_.equals(ref.budget_first_pass_coef_)
    # the first pass differs with lambda, so do the budgets
    assert not path[0].resolved_budgets_.equals(path[1].resolved_budgets_)


def test_cvxpy_engine_path():
    x, y = panel()
    template = LassoModel(model_type="FCGL", n_clusters=2, engine="cvxpy")
    lambdas = lambdas_for(template, x, y, [0.3, 0.03])
    path = template.fit_reg_lambda_path(x, y, lambdas)
    for model, lam in zip(path, lambdas, strict=True):
        assert "CLARABEL" in model.solver_
        # an interior-point answer is certified in objective (1e-8 relative), which allows
        # coefficients ~sqrt(1e-8) apart along flat directions: compare them loosely
        assert_same_fit(model, clone(template).set_params(reg_lambda=lam).fit(x, y),
                        coef_atol=1e-4)


# ---------------------------------------------------------------------- external anchors
def test_against_factorlasso_live():
    fl = pytest.importorskip("factorlasso")
    x, y = panel(seed=1)
    signs, prior = signs_and_prior(x, y)
    for model_type, kw in (("HIERARCHICAL_CLUSTER_GROUP_LASSO", {"l1_weight": 0.3}),
                           ("FACTOR_CLUSTER_GROUP_LASSO", {}),
                           ("LASSO", {"factors_beta_loading_signs": signs,
                                      "factors_beta_prior": prior})):
        ours = LassoModel(model_type=model_type, **kw)
        lambdas = lambdas_for(ours, x, y, [0.05, 0.5, 0.01])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = fl.LassoModel(model_type=getattr(fl.LassoModelType, model_type), **kw)
            their_path = theirs.fit_reg_lambda_path(x, y, lambdas)
        our_path = ours.fit_reg_lambda_path(x, y, lambdas)
        for mine, other, lam in zip(our_path, their_path, lambdas, strict=True):
            assert other.reg_lambda == lam == mine.reg_lambda
            f_theirs = mine.objective(other.coef_)
            # factorlasso stops at Clarabel's default tolerances; ours is certified
            assert mine.objective_value_ <= f_theirs * (1 + 1e-8)
            assert f_theirs <= mine.objective_value_ * (1 + 1e-5)
            np.testing.assert_allclose(mine.coef_, other.coef_.loc[mine.coef_.index,
                                                                    mine.coef_.columns],
                                       atol=2e-4)
            np.testing.assert_allclose(mine.alpha_const_, other.alpha_const_, atol=1e-4)


def _centred(x, y):
    xa, ya = x.to_numpy(), y.to_numpy()
    return xa - xa.mean(axis=0), ya - ya.mean(axis=0)


def _against_path(path, lambdas, desc, coefs):
    """Yield ``(model, scikit-learn's coefficients at its lambda)`` after checking that both
    reach the same objective (1e-8) and the same loadings (1e-6); ``coefs`` is (N, M, len)
    in the order of ``desc``."""
    for model, lam in zip(path, lambdas, strict=True):
        theirs = coefs[:, :, int(np.flatnonzero(desc == lam)[0])]
        f_theirs = model.objective(theirs)
        assert model.objective_value_ <= f_theirs * (1 + 1e-8)
        assert f_theirs <= model.objective_value_ * (1 + 1e-8)
        np.testing.assert_allclose(model.coef_.to_numpy(), theirs, atol=1e-6)
        yield model, theirs


def test_plain_lasso_against_sklearn_lasso_path():
    """Ours ``(1/T)||Y - XB' - 1a'||^2 + lambda |B|_1`` is twice scikit-learn's multi-output
    Lasso at ``alpha = lambda / 2`` on centred data, separable over responses."""
    from sklearn.linear_model import lasso_path

    x, y = panel(seed=5, T=200, M=6, N=8, ragged=False)
    ours = LassoModel(model_type="LASSO", warmup_period=None)
    lambdas = lambdas_for(ours, x, y, [0.03, 0.3, 0.003, 0.1])
    path = ours.fit_reg_lambda_path(x, y, lambdas)
    xc, yc = _centred(x, y)
    desc = np.sort(lambdas)[::-1]
    coefs = np.stack([lasso_path(xc, yc[:, k], alphas=desc / 2, tol=1e-14, max_iter=100_000)[1]
                      for k in range(y.shape[1])])  # (N, M, n_lambdas)
    for model, theirs in _against_path(path, lambdas, desc, coefs):
        assert ((model.coef_.to_numpy() == 0) == (np.abs(theirs) < 1e-12)).mean() > 0.95


def test_fcgl_one_cluster_against_sklearn_multitask_path():
    """FCGL with one cluster (group weight ``sqrt(N)``) is twice ``MultiTaskLasso`` at
    ``alpha = lambda sqrt(N) / 2``; a 2-D ``y`` makes ``lasso_path`` the multi-task path."""
    from sklearn.linear_model import lasso_path

    x, y = panel(seed=6, T=200, M=6, N=8, ragged=False)
    n = y.shape[1]
    ours = LassoModel(model_type="FCGL", n_clusters=1, warmup_period=None)
    lambdas = lambdas_for(ours, x, y, [0.03, 0.3, 0.003, 0.1])
    path = ours.fit_reg_lambda_path(x, y, lambdas)
    assert path[0].clusters_.nunique() == 1
    xc, yc = _centred(x, y)
    desc = np.sort(lambdas)[::-1]
    _, coefs, _ = lasso_path(xc, yc, alphas=desc * np.sqrt(n) / 2, tol=1e-14,
                             max_iter=100_000)  # (N, M, n_lambdas)
    for model, theirs in _against_path(path, lambdas, desc, coefs):
        # the same factors dropped for every response
        np.testing.assert_array_equal((model.coef_.to_numpy() == 0).all(axis=0),
                                      (np.abs(theirs) < 1e-12).all(axis=0))
