"""Synthetic factor panels with a known sparse, sign-coherent loading structure.

Two generators share one container, :class:`FactorPanel`:

* :func:`make_factor_panel` — the benchmark design (clustered responses, correlated
  Gaussian factors, sparse signed loadings, noise calibrated to a target R²). Used by the
  tests, the examples and ``benchmarks/bench_fit.py``.
* :func:`load_demo_panel` — the small, named, weekly multi-asset panel the product ships as
  sample data. It is generated deterministically; nothing is read from disk.

Both are *synthetic*: the "truth" (``coef``, ``clusters``, ...) is known, which is what makes
recovery measurable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FactorPanel", "make_factor_panel", "load_demo_panel"]


@dataclass(frozen=True)
class FactorPanel:
    """A synthetic factor panel together with the truth that generated it.

    The model is ``y_t = intercept + coef @ x_t + e_t`` with ``e_t ~ N(0, diag(noise_var))``
    independent of ``x_t``.

    Attributes
    ----------
    x : pandas.DataFrame, shape (T, M)
        Factor returns, indexed by a :class:`pandas.DatetimeIndex`.
    y : pandas.DataFrame, shape (T, N)
        Asset (response) returns on the same index. ``NaN`` marks a missing observation
        (only leading NaNs, i.e. an asset that starts late).
    coef : pandas.DataFrame, shape (N, M)
        True loadings, assets down and factors across (the layout of ``LassoModel.coef_``).
    intercept : pandas.Series, shape (N,)
        True per-asset intercepts.
    clusters : pandas.Series, shape (N,)
        True cluster (economic block) of each asset.
    signs : pandas.DataFrame, shape (N, M)
        A sign matrix in the ``factors_beta_loading_signs`` convention: ``+1``/``-1`` on true
        non-zeros (the true sign), ``0`` on known zeros, ``NaN`` where nothing is asserted.
    prior : pandas.DataFrame, shape (N, M)
        A prior centre for ``factors_beta_prior``: a noisy version of the truth on the true
        support, ``0`` elsewhere; never of the opposite sign to ``signs``.
    factor_cov : pandas.DataFrame, shape (M, M)
        Population covariance of the factors.
    noise_var : pandas.Series, shape (N,)
        Population variance of each asset's idiosyncratic noise.
    description : str
        One line saying what the panel is, including that it is synthetic.
    """

    x: pd.DataFrame
    y: pd.DataFrame
    coef: pd.DataFrame
    intercept: pd.Series
    clusters: pd.Series
    signs: pd.DataFrame
    prior: pd.DataFrame
    factor_cov: pd.DataFrame
    noise_var: pd.Series
    description: str = "synthetic factor panel"

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(T, M, N)``: observations, factors, assets."""
        return self.x.shape[0], self.x.shape[1], self.y.shape[1]

    @property
    def support(self) -> pd.DataFrame:
        """Boolean N×M mask of the true non-zero loadings."""
        return self.coef != 0.0

    @property
    def signal_var(self) -> pd.Series:
        """Population variance of each asset's systematic part ``coef @ x``."""
        b = self.coef.to_numpy()
        v = np.einsum("im,mk,ik->i", b, self.factor_cov.to_numpy(), b)
        return pd.Series(v, index=self.coef.index, name="signal_var")

    @property
    def population_r2(self) -> pd.Series:
        """Population R² of each asset: ``signal_var / (signal_var + noise_var)``."""
        s = self.signal_var
        return (s / (s + self.noise_var)).rename("population_r2")


def _ar1_correlation(m: int, rho: float) -> np.ndarray:
    """Correlation matrix with ``rho ** |i - j|`` entries (Toeplitz, positive definite)."""
    idx = np.arange(m)
    return rho ** np.abs(idx[:, None] - idx[None, :])


def _project_prior_on_signs(prior: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Zero prior cells whose sign contradicts a hard sign (0 / +1 / -1) in ``signs``.

    A prior of the wrong sign is infeasible as a centre under the sign constraint; the
    model rejects such inputs, so the generator never produces them.
    """
    out = prior.copy()
    out[(signs == 0.0)] = 0.0
    out[(signs == 1.0) & (out < 0.0)] = 0.0
    out[(signs == -1.0) & (out > 0.0)] = 0.0
    return out


def _leading_nans(y: np.ndarray, nan_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Blank a leading block of rows for a fraction of the assets (late starters).

    ``round(nan_fraction * N)`` assets (at least one when ``nan_fraction > 0``) lose their
    first ``k`` rows, ``k`` drawn uniformly in ``[T // 10, T // 2]``, so every asset keeps at
    least half of the sample.
    """
    t, n = y.shape
    n_ragged = min(n, max(1, int(round(nan_fraction * n))))
    cols = rng.choice(n, size=n_ragged, replace=False)
    lo, hi = max(1, t // 10), max(1, t // 2)
    starts = rng.integers(lo, hi + 1, size=n_ragged)
    y = y.copy()
    for c, k in zip(cols, starts, strict=True):
        y[:k, c] = np.nan
    return y


def make_factor_panel(
    n_samples: int = 500,
    n_factors: int = 10,
    n_assets: int = 50,
    *,
    seed: int = 0,
    noise_r2: float = 0.5,
    freq: str = "B",
    start: str = "2020-01-01",
    nan_fraction: float = 0.0,
) -> FactorPanel:
    """Generate a clustered, sparse, sign-coherent factor panel (the benchmark design).

    Design, for ``T = n_samples``, ``M = n_factors``, ``N = n_assets``:

    * factors ``x_t ~ N(0, Σ)`` with ``Σ_ij = 0.3 ** |i - j|`` (unit variances);
    * ``K = max(2, N // 10)`` true clusters of assets (balanced sizes, shuffled);
    * each cluster has a template on ``max(1, M // 3)`` randomly chosen factors, each with a
      random sign and a magnitude drawn from ``U(0.3, 1.2)``;
    * each asset scales its cluster template by ``U(0.6, 1.4)`` and drops each active cell with
      probability 0.2 (at least one cell is always kept, so no asset is pure noise);
    * noise is Gaussian with variance set so that the population R² of every asset equals
      ``noise_r2`` (``noise_r2 = 0.5``: noise sd equals the sd of the signal);
    * small intercepts ``N(0, 0.02²)``.

    Parameters
    ----------
    n_samples : int, default 500
        Number of observations ``T`` (rows).
    n_factors : int, default 10
        Number of factors ``M``.
    n_assets : int, default 50
        Number of assets / responses ``N``.
    seed : int, default 0
        Seed of :func:`numpy.random.default_rng`; equal seeds give identical panels.
    noise_r2 : float, default 0.5
        Population R² of each asset's signal, in ``(0, 1)``.
    freq : str, default "B"
        Pandas frequency of the date index.
    start : str, default "2020-01-01"
        First date of the index.
    nan_fraction : float, default 0.0
        Fraction of assets given a ragged history (a leading block of NaNs covering between
        10% and 50% of the sample). ``0`` gives a balanced panel.

    Returns
    -------
    FactorPanel
        Data and truth. ``signs`` holds the true sign on the true support, ``0`` on a random
        half of the true zeros and ``NaN`` elsewhere; ``prior`` is the truth plus
        ``N(0, 0.2²)`` on the true support (cells whose noise flips the sign are set to 0) and
        ``0`` elsewhere.

    Raises
    ------
    ValueError
        If a size is not positive, ``noise_r2`` is outside ``(0, 1)`` or ``nan_fraction``
        is outside ``[0, 1]``.

    Examples
    --------
    >>> panel = make_factor_panel(200, 4, 10, seed=1)
    >>> panel.x.shape, panel.y.shape, panel.coef.shape
    ((200, 4), (200, 10), (10, 4))
    """
    t, m, n = int(n_samples), int(n_factors), int(n_assets)
    if t < 1 or m < 1 or n < 1:
        raise ValueError(f"n_samples, n_factors and n_assets must be positive, got {(t, m, n)}")
    if not 0.0 < noise_r2 < 1.0:
        raise ValueError(f"noise_r2 must be in (0, 1), got {noise_r2}")
    if not 0.0 <= nan_fraction <= 1.0:
        raise ValueError(f"nan_fraction must be in [0, 1], got {nan_fraction}")

    rng = np.random.default_rng(seed)
    factor_cov = _ar1_correlation(m, 0.3)
    x = rng.standard_normal((t, m)) @ np.linalg.cholesky(factor_cov).T

    k = max(2, n // 10)
    labels = rng.permutation(np.arange(n) % k)  # balanced cluster sizes, random membership
    n_active = max(1, m // 3)
    templates = np.zeros((k, m))
    for c in range(k):
        cols = rng.choice(m, size=n_active, replace=False)
        templates[c, cols] = rng.choice([-1.0, 1.0], size=n_active) * rng.uniform(
            0.3, 1.2, size=n_active
        )

    coef = templates[labels] * rng.uniform(0.6, 1.4, size=(n, 1))
    keep = rng.random((n, m)) >= 0.2
    for i in range(n):
        active = np.flatnonzero(coef[i])
        if not keep[i, active].any():  # never leave an asset without any true loading
            keep[i, rng.choice(active)] = True
    coef = np.where(keep, coef, 0.0)

    signal_var = np.einsum("im,mk,ik->i", coef, factor_cov, coef)
    noise_var = signal_var * (1.0 - noise_r2) / noise_r2
    intercept = rng.normal(0.0, 0.02, size=n)
    noise = rng.standard_normal((t, n)) * np.sqrt(noise_var)
    y = intercept + x @ coef.T + noise

    support = coef != 0.0
    signs = np.full((n, m), np.nan)
    signs[support] = np.sign(coef[support])
    zero_cells = np.flatnonzero(~support)
    signs.flat[rng.choice(zero_cells, size=len(zero_cells) // 2, replace=False)] = 0.0

    prior = np.where(support, coef + rng.normal(0.0, 0.2, size=(n, m)), 0.0)
    prior = _project_prior_on_signs(prior, signs)

    if nan_fraction > 0.0:
        y = _leading_nans(y, nan_fraction, rng)

    index = pd.date_range(start=start, periods=t, freq=freq, name="date")
    factors = pd.Index([f"f{j}" for j in range(m)], name="factor")
    assets = pd.Index([f"y{i}" for i in range(n)], name="asset")
    return FactorPanel(
        x=pd.DataFrame(x, index=index, columns=factors),
        y=pd.DataFrame(y, index=index, columns=assets),
        coef=pd.DataFrame(coef, index=assets, columns=factors),
        intercept=pd.Series(intercept, index=assets, name="intercept"),
        clusters=pd.Series(labels + 1, index=assets, name="cluster"),
        signs=pd.DataFrame(signs, index=assets, columns=factors),
        prior=pd.DataFrame(prior, index=assets, columns=factors),
        factor_cov=pd.DataFrame(factor_cov, index=factors, columns=factors),
        noise_var=pd.Series(noise_var, index=assets, name="noise_var"),
        description=(
            f"synthetic factor panel (seed={seed}): T={t}, M={m} factors, N={n} assets "
            f"in {k} clusters, population R2={noise_r2:g}"
        ),
    )


# --------------------------------------------------------------------------------------
# Embedded demo data
# --------------------------------------------------------------------------------------

_DEMO_SEED = 20_240_105
_DEMO_WEEKS = 260
_DEMO_END = "2023-12-22"  # the last Friday of the 260 weeks from 2019-01-04
_DEMO_FACTORS = ("Equity", "Rates", "Credit", "USD", "Commodities", "Inflation")
# Annualised factor vols; the factors are excess returns of tradable proxies ("Rates" is a
# long-duration bond return, so govies load positively on it).
_DEMO_FACTOR_VOL = (0.16, 0.06, 0.05, 0.08, 0.20, 0.04)
_DEMO_FACTOR_CORR = np.array(
    [
        # Equity Rates Credit  USD  Commod Infl
        [1.00, -0.20, 0.55, -0.25, 0.35, 0.10],
        [-0.20, 1.00, 0.15, 0.10, -0.20, -0.45],
        [0.55, 0.15, 1.00, -0.15, 0.20, -0.05],
        [-0.25, 0.10, -0.15, 1.00, -0.35, -0.15],
        [0.35, -0.20, 0.20, -0.35, 1.00, 0.40],
        [0.10, -0.45, -0.05, -0.15, 0.40, 1.00],
    ]
)
# (block, asset, {factor: true loading}, population R²). Within a block every loading on a
# given factor has the same sign, which is what the sign matrix asserts. Non-US equities are
# local-currency (a stronger USD helps exporters: positive), EU credit is currency-hedged.
_DEMO_ASSETS: tuple[tuple[str, str, dict[str, float], float], ...] = (
    ("Equities", "SPX", {"Equity": 1.00, "USD": 0.10}, 0.90),
    ("Equities", "NDX", {"Equity": 1.25, "Rates": 0.30}, 0.85),
    ("Equities", "SX5E", {"Equity": 1.05, "USD": 0.35}, 0.80),
    ("Equities", "UKX", {"Equity": 0.80, "USD": 0.25, "Commodities": 0.15}, 0.75),
    ("Equities", "NKY", {"Equity": 0.90, "USD": 0.45}, 0.65),
    ("Equities", "MXEF", {"Equity": 1.10, "Commodities": 0.20}, 0.75),
    ("Govies", "UST10", {"Rates": 1.00}, 0.92),
    ("Govies", "UST30", {"Rates": 1.80, "Inflation": -0.40}, 0.88),
    ("Govies", "BUND10", {"Rates": 0.85, "Inflation": -0.20}, 0.75),
    ("Govies", "GILT10", {"Rates": 0.80, "Inflation": -0.35}, 0.65),
    ("Govies", "JGB10", {"Rates": 0.30}, 0.35),
    ("Govies", "BTP10", {"Rates": 0.70, "Credit": 0.60}, 0.60),
    ("Credit", "US_IG", {"Credit": 0.80, "Rates": 0.75}, 0.85),
    ("Credit", "US_HY", {"Credit": 1.30, "Equity": 0.20}, 0.85),
    ("Credit", "EU_IG", {"Credit": 0.70, "Rates": 0.60}, 0.75),
    ("Credit", "EU_HY", {"Credit": 1.20, "Equity": 0.15}, 0.75),
    ("Credit", "EM_SOV", {"Credit": 0.90, "Rates": 0.50, "USD": -0.30}, 0.70),
    ("Credit", "CONVERT", {"Credit": 0.40, "Equity": 0.45}, 0.80),
    ("Commodities", "BRENT", {"Commodities": 1.30, "Inflation": 0.60}, 0.75),
    ("Commodities", "WTI", {"Commodities": 1.35, "Inflation": 0.50}, 0.75),
    ("Commodities", "GOLD", {"USD": -0.80, "Inflation": 0.70}, 0.55),
    ("Commodities", "SILVER", {"USD": -0.90, "Commodities": 0.40, "Inflation": 0.60}, 0.50),
    ("Commodities", "COPPER", {"Commodities": 0.90, "Equity": 0.30, "USD": -0.30}, 0.60),
    ("Commodities", "BCOM", {"Commodities": 0.85, "USD": -0.20}, 0.85),
)
# Cells an economist would confidently pin to zero, by block: (block, factor).
_DEMO_KNOWN_ZEROS = (
    ("Govies", "Equity"),
    ("Govies", "Commodities"),
    ("Govies", "USD"),
    ("Equities", "Credit"),
    ("Equities", "Inflation"),
    ("Credit", "Commodities"),
    ("Credit", "Inflation"),
    ("Commodities", "Rates"),
    ("Commodities", "Credit"),
)


def load_demo_panel(n_weeks: int = _DEMO_WEEKS) -> FactorPanel:
    """Return the embedded sample panel: synthetic weekly multi-asset returns, 6 macro factors.

    The panel is generated deterministically (fixed seed, no files) and is **synthetic**: the
    names are illustrative and the numbers are not market data. By default it has 260 weekly
    observations (Fridays from 2019-01-04) of six factor returns (``Equity``, ``Rates``,
    ``Credit``, ``USD``, ``Commodities``, ``Inflation``, with realistic annualised vols and
    correlations) and 24 assets in four economic blocks (``Equities``, ``Govies``,
    ``Credit``, ``Commodities``), six assets each. Each asset loads on one to three factors;
    within a block the loadings on a factor share a sign. Idiosyncratic noise is set per asset
    from a target population R² between 0.35 and 0.92.

    Parameters
    ----------
    n_weeks : int, default 260
        Number of weeks. Every length ends on the same Friday (2023-12-22) and has the same
        true loadings, blocks, signs, prior and noise levels; the returns of another length
        are another draw (the default's numbers never change). 520 weeks (ten years) leave
        room for a walk-forward backtest: quarterly re-fits after two years of history.

    Returns
    -------
    FactorPanel
        ``clusters`` holds the block name of each asset. ``signs`` gives the true sign on the
        true support, ``0`` on block-level cells known to be irrelevant (for example govies on
        ``Equity``) and ``NaN`` elsewhere. ``prior`` is the block-average true loading on each
        supported cell (what a desk would write down as a rule of thumb) and ``0`` elsewhere,
        hence sign-consistent with ``signs``.

    Examples
    --------
    >>> demo = load_demo_panel()
    >>> demo.shape
    (260, 6, 24)
    >>> sorted(demo.clusters.unique())
    ['Commodities', 'Credit', 'Equities', 'Govies']
    """
    if isinstance(n_weeks, bool) or not isinstance(n_weeks, (int, np.integer)) or n_weeks < 52:
        raise ValueError(f"n_weeks must be a whole number >= 52, got {n_weeks!r}")
    n_weeks = int(n_weeks)
    # The default keeps its historical seed; another length draws from a seed of its own.
    rng = np.random.default_rng(_DEMO_SEED if n_weeks == _DEMO_WEEKS else (_DEMO_SEED, n_weeks))
    factors = pd.Index(_DEMO_FACTORS, name="factor")
    assets = pd.Index([a for _, a, _, _ in _DEMO_ASSETS], name="asset")
    blocks = pd.Series([b for b, _, _, _ in _DEMO_ASSETS], index=assets, name="cluster")
    m, n = len(factors), len(assets)

    vol_w = np.asarray(_DEMO_FACTOR_VOL) / np.sqrt(52.0)
    factor_cov = _DEMO_FACTOR_CORR * np.outer(vol_w, vol_w)
    # Small positive drift: factor risk premia of a few % a year.
    drift = np.array([0.06, 0.01, 0.02, 0.0, 0.02, 0.0]) / 52.0
    x = drift + rng.standard_normal((n_weeks, m)) @ np.linalg.cholesky(factor_cov).T

    coef = pd.DataFrame(0.0, index=assets, columns=factors)
    for _, name, loads, _ in _DEMO_ASSETS:
        for f, v in loads.items():
            coef.loc[name, f] = v
    b = coef.to_numpy()
    r2 = np.array([r for _, _, _, r in _DEMO_ASSETS])
    signal_var = np.einsum("im,mk,ik->i", b, factor_cov, b)
    noise_var = signal_var * (1.0 - r2) / r2
    intercept = rng.normal(0.0, 0.0005, size=n)  # ~ +/-2.6% a year
    y = intercept + x @ b.T + rng.standard_normal((n_weeks, n)) * np.sqrt(noise_var)

    support = b != 0.0
    signs = pd.DataFrame(np.where(support, np.sign(b), np.nan), index=assets, columns=factors)
    for block, f in _DEMO_KNOWN_ZEROS:
        rows = blocks.index[blocks == block]
        # A known zero must not override a true loading.
        assert not support[blocks.index.get_indexer(rows), factors.get_loc(f)].any()
        signs.loc[rows, f] = 0.0

    block_mean = coef.where(support).groupby(blocks).transform("mean")
    prior = block_mean.where(support, 0.0).round(2)
    # Sign-coherent blocks make the block-mean prior agree with every asset's sign.
    assert (np.sign(prior.to_numpy()) == np.sign(b)).all()

    index = pd.date_range(end=_DEMO_END, periods=n_weeks, freq="W-FRI", name="date")
    return FactorPanel(
        x=pd.DataFrame(x, index=index, columns=factors),
        y=pd.DataFrame(y, index=index, columns=assets),
        coef=coef,
        intercept=pd.Series(intercept, index=assets, name="intercept"),
        clusters=blocks,
        signs=signs,
        prior=prior,
        factor_cov=pd.DataFrame(factor_cov, index=factors, columns=factors),
        noise_var=pd.Series(noise_var, index=assets, name="noise_var"),
        description=(
            f"SYNTHETIC demo data (deterministic, not market data): {n_weeks} weekly returns "
            "of 24 assets in 4 blocks on 6 macro factors"
        ),
    )


def recovery_metrics(coef: pd.DataFrame, truth: pd.DataFrame, tol: float = 1e-4) -> dict:
    """How well an estimate recovers known loadings.

    Parameters
    ----------
    coef, truth : pandas.DataFrame
        Estimated and true loadings (responses x factors); ``coef`` is aligned to ``truth``.
    tol : float, default 1e-4
        A loading counts as active when ``|b| > tol`` (interior-point solutions carry ~1e-8 dust).

    Returns
    -------
    dict
        ``rel_error`` (Frobenius, relative), ``tpr`` / ``fpr`` of the support,
        ``sign_agreement`` on the true support and ``active`` (number of active cells).
    """
    est = coef.loc[truth.index, truth.columns].to_numpy(dtype=float)
    true = truth.to_numpy(dtype=float)
    found, support = np.abs(est) > tol, true != 0
    return {
        "rel_error": float(np.linalg.norm(est - true) / np.linalg.norm(true)),
        "tpr": float((found & support).sum() / support.sum()),
        "fpr": float((found & ~support).sum() / max((~support).sum(), 1)),
        "sign_agreement": float(np.mean(np.sign(est[support]) == np.sign(true[support]))),
        "active": int(found.sum()),
    }
