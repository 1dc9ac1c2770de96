"""The expert prior map and the selected-factor statistics against factorlasso 1.0.6 live.

``map_expert_factor_priors`` must give factorlasso's ``selection`` and ``audit`` exactly (same
warnings, same exception classes), ``compute_expert_prior_statistics`` factorlasso's frame to
1e-10, and the map's selection must move ``LassoModel``'s prior as it moves factorlasso's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import xl_factorlasso as xf
from xl_factorlasso import (
    ExpertPriorResolution,
    LassoModel,
    compute_expert_prior_statistics,
    map_expert_factor_priors,
)

fl = pytest.importorskip("factorlasso")

FACTORS = ["Equity", "Rates", "Inflation", "Credit IG", "Credit HY", "Credit EM", "Gold",
           "Oil"]

# (ticker, description, asset class or None): every rule, several spellings, and near misses
NAMES = [
    ("SPX", "EQ US", "equity"),
    ("MXWO", "MSCI World Net Total Return USD Index", "Equity"),
    ("MXEF", "MSCI Emerging Markets Net Return USD Index", "equities"),
    ("MXJP", "MSCI Japan 100% Hedged to USD Net", "equity"),
    ("MXEUX", "MSCI Europe ex UK ex Switzerland Net Total Return EUR", "equity"),
    ("MXWOVAL", "MSCI World Value Net Total Return USD Index", "equity"),
    ("UKX", "United Kingdom Large & Mid Cap Net Return Index (GBP)", "equity"),
    ("MUKLM", "MSCI United Kingdom Large Mid Cap Net Return Index", "equity"),
    ("SLI", "SLI Swiss Leader Perform", "equity"),
    ("EQCH", "EQ Swiss CHF Hedged", None),
    ("EQAS", "eq ac asia ex japan", None),
    ("EQTECH", "EQ US Technology", None),
    ("REIT", "Global Listed REITs", "equity"),
    ("REIT2", "MSCI World Real Estate Net Return USD", "equity"),
    ("MREIT", "US Mortgage REITs", "equity"),
    ("PRE", "Private Equity REIT fund", "equity"),
    ("EQBND", "EQ bond hybrid", None),
    ("UST", "US Treasury 7-10Y", "bonds"),
    ("BUND", "German Government Bonds", "fixed income"),
    ("TIPS", "US TIPS 1-10Y", "Bonds"),
    ("ILB", "Global Inflation Linked Bonds", None),
    ("LQD", "USD Investment Grade Corporates", "bond"),
    ("IGC", "Global IG Credit", None),
    ("AGG", "Bloomberg Global Aggregate", "fixed income"),
    ("CORP", "EUR Corporates", "fixed income"),
    ("HYG", "US High Yield", "bonds"),
    ("HY2", "Euro HY Bonds", None),
    ("EMB", "JPM EMBI Global Diversified", "bonds"),
    ("CEMBI", "CEMBI Broad", None),
    ("EMLC", "EM Local Currency Bonds", "bonds"),
    ("MIX1", "Government and Corporate Bonds", "bonds"),
    ("MIX2", "Global High Yield and Emerging Markets Debt", "bonds"),
    ("MUNI", "US Municipal Bonds", "bonds"),
    ("MUNIHY", "High Yield Municipal Bonds", "bonds"),
    ("SECB", "Securitised Bonds", "bonds"),
    ("COCO", "AT1 CoCos", "hybrid"),
    ("COCOIG", "Investment Grade Contingent Convertibles", "hybrids"),
    ("CONV", "Global Convertibles", "hybrid"),
    ("CONVA", "Convertible Arbitrage", "hybrid"),
    ("PREF", "US Preferred Stock", "hybrid"),
    ("PREFHY", "High Yield Preferred", "hybrid"),
    ("FRN", "Floating Rate Notes", "bonds"),
    ("FRNIG", "Investment Grade Floaters", "bonds"),
    ("GLD", "Gold Bullion", "commodity"),
    ("OIL", "Brent Oil", "commodities"),
    ("GDX", "Gold Miners", "commodity"),
    ("GO", "Gold and Oil basket", "commodity"),
    ("BCOM", "Bloomberg Commodity Index", "commodity"),
    ("CASH", "USD Cash", "cash"),
    ("HF", "Hedge Fund Composite", "alternatives"),
    ("UNK", "Something Else Entirely", None),
    ("NUM", 42, None),
    ("NODESC", np.nan, "equity"),
    ("SPXNAN", "EQ World", np.nan),
]


def names(with_class=True):
    index = [t for t, _, _ in NAMES]
    descriptions = pd.Series([d for _, d, _ in NAMES], index=index, dtype=object)
    classes = pd.Series([c for _, _, c in NAMES], index=index, dtype=object)
    return descriptions, (classes if with_class else None)


def both(*args, **kw):
    """Run ours and factorlasso's, returning both results and both warning lists."""
    out = []
    for fn in (map_expert_factor_priors, fl.map_expert_factor_priors):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn(*args, **kw)
        out.append((result, [(w.category, str(w.message)) for w in caught]))
    return out


def assert_same_resolution(ours, theirs):
    assert isinstance(ours, ExpertPriorResolution)
    pd.testing.assert_series_equal(ours.selection, theirs.selection)
    pd.testing.assert_frame_equal(ours.audit, theirs.audit)
    # tuples stay tuples (assert_series_equal compares object cells with ==)
    assert [type(v) for v in ours.selection] == [type(v) for v in theirs.selection]


@pytest.mark.parametrize("with_class", [True, False])
@pytest.mark.parametrize("policy_version", [None, "2026-Q4"])
def test_name_rules_match_factorlasso(with_class, policy_version):
    descriptions, classes = names(with_class)
    (ours, w_ours), (theirs, w_theirs) = both(descriptions, FACTORS, asset_class=classes,
                                              policy_version=policy_version)
    assert_same_resolution(ours, theirs)
    assert w_ours == w_theirs == []
    # the rules really fire (not an all-automatic agreement)
    sources = ours.audit["source"].value_counts()
    assert sources["name"] >= 15 and sources["ambiguous"] >= 3


def test_selected_values_are_the_documented_rules():
    descriptions, classes = names()
    result = map_expert_factor_priors(descriptions, FACTORS, asset_class=classes)
    expected = {"SPX": "Equity", "MXWO": "Equity", "MXWOVAL": None, "REIT": ("Rates", "Equity"),
                "MREIT": None, "UST": "Rates", "TIPS": ("Rates", "Inflation"),
                "LQD": "Credit IG", "AGG": "Credit IG", "HYG": "Credit HY", "EMB": "Credit EM",
                "EMLC": None, "MIX1": None, "MUNI": "Rates", "COCO": None,
                "COCOIG": "Credit IG", "CONV": ("Rates", "Equity"), "FRN": None, "GLD": "Gold",
                "OIL": "Oil", "GDX": None, "GO": None, "CASH": None}
    assert {k: result.selection[k] for k in expected} == expected
    assert result.audit.loc["TIPS"].tolist() == ["US TIPS 1-10Y", "Rates + Inflation", "name",
                                                 "inflation_linked", None]
    assert result.audit.loc["MIX1", ["source", "rule"]].tolist() == ["ambiguous",
                                                                     "mixed_factor_name"]
    assert result.audit.loc["EMLC", "rule"] == "unsupported_em_local_currency"
    assert result.selection.name == "factor_for_prior"
    assert list(result.audit.columns) == ["name", "selection", "source", "rule",
                                          "policy_version"]


def test_overrides_including_pairs_match_factorlasso():
    descriptions, classes = names()
    overrides = {"spx": "Rates", " MXWO ": ["Equity", "Credit HY"], "CASH": ("Rates",),
                 "UNK": "Gold", "NOT_THERE": "Oil", "NUM": None}
    (ours, w_ours), (theirs, w_theirs) = both(descriptions, FACTORS, asset_class=classes,
                                              ticker_overrides=overrides, policy_version="v1")
    assert_same_resolution(ours, theirs)
    assert w_ours == w_theirs == []
    assert ours.selection["SPX"] == "Rates"
    assert ours.selection["MXWO"] == ("Equity", "Credit HY")
    assert ours.audit.loc["MXWO"].tolist()[1:] == ["Equity + Credit HY", "override",
                                                   "reviewed_override", "v1"]


def test_factor_absent_from_the_model_warns_and_falls_back_as_factorlasso():
    descriptions, classes = names()
    factors = pd.Index(["Equity", "Rates", "Credit IG"])  # no Inflation, HY, EM, Gold, Oil
    (ours, w_ours), (theirs, w_theirs) = both(descriptions, factors, asset_class=classes,
                                              ticker_overrides={"UNK": ["Rates", "Momentum"]})
    assert_same_resolution(ours, theirs)
    assert w_ours == w_theirs and len(w_ours) == 1
    category, message = w_ours[0]
    assert category is UserWarning
    assert "'TIPS': ['Inflation']" in message and "'UNK': ['Momentum']" in message
    assert ours.audit.loc["HYG", ["source", "rule"]].tolist() == ["unavailable",
                                                                  "factor_absent_from_model"]
    assert ours.selection["HYG"] is None and ours.selection["LQD"] == "Credit IG"
    # a mapping contributes its keys
    (ours, _), (theirs, _) = both(descriptions, dict.fromkeys(factors, 1.0), asset_class=classes)
    assert_same_resolution(ours, theirs)


@pytest.mark.parametrize("args, kw, error", [
    (([1, 2], FACTORS), {}, TypeError),
    ((pd.Series(["EQ US", "EQ UK"], index=["A", "A"]), FACTORS), {}, ValueError),
    ((pd.Series(["EQ US", "EQ UK"], index=["a", "A"]), FACTORS), {}, ValueError),
    ((pd.Series(["EQ US", "EQ UK"], index=["A", " "]), FACTORS), {}, ValueError),
    ((pd.Series(["EQ US", "EQ UK"], index=["A", None]), FACTORS), {}, ValueError),
    ((pd.Series(["EQ US", "EQ UK"], index=["A", np.nan]), FACTORS), {}, ValueError),
    ((pd.Series(["EQ US"], index=["A"]), "Equity"), {}, TypeError),
    ((pd.Series(["EQ US"], index=["A"]), 5), {}, TypeError),
    ((pd.Series(["EQ US"], index=["A"]), []), {}, ValueError),
    ((pd.Series(["EQ US"], index=["A"]), ["Equity", "Equity"]), {}, ValueError),
    ((pd.Series(["EQ US"], index=["A"]), ["Equity", " "]), {}, ValueError),
    ((pd.Series(["EQ US"], index=["A"]), ["Equity", 3]), {}, ValueError),
    ((pd.Series(["EQ US"], index=["A"]), FACTORS), {"asset_class": {"A": "equity"}}, TypeError),
    ((pd.Series(["EQ US"], index=["A"]), FACTORS),
     {"asset_class": pd.Series(["equity"], index=["B"])}, ValueError),
    ((pd.Series(["EQ US"], index=["A"]), FACTORS), {"ticker_overrides": [("A", "Rates")]},
     TypeError),
    ((pd.Series(["EQ US"], index=["A"]), FACTORS),
     {"ticker_overrides": {"a": "Rates", "A": "Equity"}}, ValueError),
    ((pd.Series(["EQ US"], index=["A"]), FACTORS),
     {"ticker_overrides": {"A": ["Rates", "Equity", "Gold"]}}, ValueError),
    ((pd.Series(["EQ US"], index=["A"]), FACTORS), {"ticker_overrides": {"A": []}},
     ValueError),
    ((pd.Series(["EQ US"], index=["A"]), FACTORS), {"ticker_overrides": {"A": ["Rates"] * 2}},
     ValueError),
    ((pd.Series(["EQ US"], index=["A"]), FACTORS), {"ticker_overrides": {"A": " "}},
     ValueError),
    ((pd.Series(["EQ US"], index=["A"]), FACTORS), {"ticker_overrides": {"A": 7}}, ValueError),
])
def test_bad_inputs_raise_the_same_exception_class_as_factorlasso(args, kw, error):
    with pytest.raises(error) as theirs:
        fl.map_expert_factor_priors(*args, **kw)
    with pytest.raises(error) as ours:
        map_expert_factor_priors(*args, **kw)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value)  # a message, never a bare exception


def test_messages_name_the_offending_input():
    one = pd.Series(["EQ US", "EQ UK"], index=["A", "A"])
    with pytest.raises(ValueError, match=r"^expert-prior tickers must be unique; repeated: "
                                         r"\['A'\]$"):
        map_expert_factor_priors(one, FACTORS)
    with pytest.raises(ValueError, match=r"^expert-prior selection for 'A' names 3 factors "
                                         r"\['Rates', 'Equity', 'Gold'\]; at most 2 are "
                                         r"allowed$"):
        map_expert_factor_priors(pd.Series(["x"], index=["A"]), FACTORS,
                                 ticker_overrides={"A": ["Rates", "Equity", "Gold"]})


def test_empty_input_gives_empty_frames_with_the_columns():
    result = map_expert_factor_priors(pd.Series([], dtype=object), FACTORS)
    assert result.selection.empty and result.selection.name == "factor_for_prior"
    assert list(result.audit.columns) == ["name", "selection", "source", "rule",
                                          "policy_version"] and result.audit.empty


# --- compute_expert_prior_statistics --------------------------------------------------------

def stats_panel(seed, T=120, k=1, gaps=False):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2019-01-06", periods=T, freq="W")
    x = pd.DataFrame(rng.standard_normal((T, k)) + 0.3, index=idx,
                     columns=[f"f{j}" for j in range(k)])
    e = rng.standard_normal(T)
    e[1:] += 0.5 * e[:-1]  # serial correlation, so the lags matter
    y = pd.Series(x.to_numpy() @ rng.standard_normal(k) + 0.2 + e, index=idx, name="y")
    if gaps:
        y.iloc[:10] = np.nan  # late start
        y.iloc[50:55] = np.nan  # calendar gap
        x.iloc[80, 0] = np.nan
    return x, y


def assert_same_statistics(ours, theirs):
    pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed, k, gaps, span, lags", [
    (0, 1, False, None, 0), (1, 1, True, None, 4), (2, 2, False, 26.0, 0),
    (3, 2, True, 52, 3), (4, 3, True, 12.5, 8), (5, 1, False, 1.0, 0), (6, 1, True, 200, 150),
])
def test_statistics_match_factorlasso(seed, k, gaps, span, lags):
    x, y = stats_panel(seed, k=k, gaps=gaps)
    ours = compute_expert_prior_statistics(x, y, span=span, hac_lags=lags)
    theirs = fl.compute_expert_prior_statistics(x, y, span=span, hac_lags=lags)
    assert_same_statistics(ours, theirs)
    if span != 1.0:  # span 1 puts all weight on the last row: not identified
        assert (ours["status"] == "ok").all() and ours["se_hac"].gt(0).all()
    if gaps:
        assert ours["calendar_gaps"].iloc[0] > 0


def test_statistics_unidentified_cases_report_a_status_as_factorlasso():
    x, y = stats_panel(7, k=2)
    singular = x.assign(f1=2.0 * x["f0"])  # collinear pair
    constant = x.assign(f1=1.5)  # no variation
    short = (x.iloc[:3], y.iloc[:3])
    cases = [(singular, y, {}), (constant, y, {}), (*short, {}), (x, y, {"min_periods": 500})]
    statuses = []
    for xx, yy, kw in cases:
        ours = compute_expert_prior_statistics(xx, yy, **kw)
        theirs = fl.compute_expert_prior_statistics(xx, yy, **kw)
        assert_same_statistics(ours, theirs)
        assert ours["reference_beta"].isna().all() and ours["se_hac"].isna().all()
        statuses.append(ours["status"].iloc[0])
    assert statuses == ["rank_deficient", "rank_deficient", "insufficient_observations",
                        "insufficient_observations"]


def test_statistics_single_factor_closed_form():
    # unweighted slope and White (HC0 x n/(n-2)) standard error
    x, y = stats_panel(8)
    a, b = x["f0"].to_numpy(), y.to_numpy()
    n = len(a)
    ac = a - a.mean()
    slope = ac @ (b - b.mean()) / (ac @ ac)
    resid = b - b.mean() - slope * ac
    se = np.sqrt(np.sum((ac * resid) ** 2) / (ac @ ac) ** 2 * n / (n - 2))
    out = compute_expert_prior_statistics(x, y)
    assert out.loc["f0", "reference_beta"] == pytest.approx(slope, rel=1e-12)
    assert out.loc["f0", "se_hac"] == pytest.approx(se, rel=1e-10)
    assert out.loc["f0", "effective_n"] == pytest.approx(n, rel=1e-12)


@pytest.mark.parametrize("kw, message", [
    ({"span": 0.5}, "span must be a finite number >= 1 or None, got 0.5"),
    ({"span": np.inf}, "span must be a finite number >= 1 or None, got inf"),
    ({"hac_lags": -1}, "hac_lags must be a whole number >= 0, got -1"),
    ({"hac_lags": 1.5}, "hac_lags must be a whole number >= 0, got 1.5"),
    ({"min_periods": True}, "min_periods must be a whole number >= 0, got True"),
])
def test_statistics_bad_settings_raise_value_error_as_factorlasso(kw, message):
    x, y = stats_panel(9)
    with pytest.raises(ValueError):
        fl.compute_expert_prior_statistics(x, y, **kw)
    with pytest.raises(ValueError, match=f"^{message}$"):
        compute_expert_prior_statistics(x, y, **kw)


def test_statistics_bad_panels_raise_value_error_as_factorlasso():
    x, y = stats_panel(10)
    cases = [(x, y.iloc[1:]), (x["f0"], y), (x, y.to_frame()), (x.iloc[:0], y.iloc[:0]),
             (x.iloc[::-1], y.iloc[::-1])]
    for xx, yy in cases:
        with pytest.raises(ValueError):
            fl.compute_expert_prior_statistics(xx, yy)
        with pytest.raises(ValueError):
            compute_expert_prior_statistics(xx, yy)


# --- the map feeding the OLS prior ----------------------------------------------------------

def test_map_selection_drives_the_ols_prior_as_in_factorlasso():
    rng = np.random.default_rng(11)
    T = 160
    idx = pd.date_range("2020-01-05", periods=T, freq="W")
    factors = ["Equity", "Rates", "Inflation", "Credit HY", "Gold"]
    x = pd.DataFrame(rng.standard_normal((T, len(factors))), index=idx, columns=factors)
    descriptions = pd.Series({"SPX": "EQ US", "UST": "US Treasury 7-10Y",
                              "TIPS": "US TIPS 1-10Y", "REIT": "EQ Global Listed REITs",
                              "HYG": "US High Yield", "GLD": "Gold Bullion",
                              "CASH": "USD Cash", "EMB": "JPM EMBI Global"})
    classes = pd.Series({"SPX": None, "UST": "bonds", "TIPS": "bonds", "REIT": None,
                         "HYG": "bonds", "GLD": "commodity", "CASH": "cash", "EMB": "bonds"})
    b = rng.standard_normal((len(descriptions), len(factors))) * 0.4
    y = pd.DataFrame(x.to_numpy() @ b.T + rng.standard_normal((T, len(descriptions))),
                     index=idx, columns=descriptions.index)
    y.iloc[:20, 1] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mapped = map_expert_factor_priors(descriptions, x.columns, asset_class=classes)
    assert [str(w.message) for w in caught] == [
        "expert prior factors absent from this model; retaining automatic selection for "
        "{'EMB': ['Credit EM']}"]
    assert mapped.selection.notna().sum() == 6  # CASH and EMB stay automatic
    kw = dict(reg_lambda=2e-3, span=52, apply_ols_prior=True,
              factor_for_prior=mapped.selection)
    ours = LassoModel(**kw).fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fl.LassoModel(**kw).fit(x=x, y=y)
    for name in ("ols_beta_prior_", "effective_beta_prior_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-10,
                                   atol=1e-12, err_msg=name)
    # the named cells carry the prior: TIPS on its joint (Rates, Inflation) slopes
    prior = ours.ols_beta_prior_
    assert (prior.loc["TIPS", ["Rates", "Inflation"]] != 0).all()
    assert (prior.loc["TIPS", ["Equity", "Credit HY", "Gold"]] == 0).all()
    assert prior.loc["GLD", "Gold"] == pytest.approx(ours.ols_betas_.loc["GLD", "Gold"],
                                                     rel=1e-12)
    # and the statistic the floors use equals the helper's table
    table = compute_expert_prior_statistics(x[["Rates", "Inflation"]], y["TIPS"], span=52)
    np.testing.assert_allclose(prior.loc["TIPS", ["Rates", "Inflation"]],
                               table["reference_beta"], rtol=1e-10)


def test_names_are_exported_everywhere():
    from xl_factorlasso import core
    from xl_factorlasso.core import linear_model

    for name in ("ExpertPriorResolution", "map_expert_factor_priors",
                 "compute_expert_prior_statistics"):
        for module in (xf, core, linear_model):
            assert name in module.__all__ and getattr(module, name) is getattr(xf, name)
