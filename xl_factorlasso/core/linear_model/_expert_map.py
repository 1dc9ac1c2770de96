"""From instrument descriptions to ``factor_for_prior`` selections (factorlasso 1.0.6's map).

:func:`map_expert_factor_priors` reads each response's description (and, optionally, its broad
asset class) and proposes the factor(s) whose OLS slope should centre that response's prior:

* equity class (or no class and a name starting ``"EQ "``): a broad equity index -> ``Equity``;
  listed real estate -> ``(Rates, Equity)``; anything else (styles, sectors) stays automatic;
* fixed income / hybrid class (or no class): inflation-linked -> ``(Rates, Inflation)``,
  investment grade / high yield / EM -> ``Credit IG`` / ``Credit HY`` / ``Credit EM``,
  government, municipal, securitized -> ``Rates``, convertibles and preferreds ->
  ``(Rates, Equity)``; names mixing two rules are ``ambiguous`` and stay automatic;
* commodity class: a pure gold or oil mandate -> ``Gold`` / ``Oil``;
* a reviewed ``ticker_overrides`` entry wins over every name rule.

A proposed factor the model does not have is dropped (automatic selection) with one warning.
Nothing here estimates a number: the result only feeds ``LassoModel.factor_for_prior``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import pandas as pd

__all__ = ["ExpertPriorResolution", "map_expert_factor_priors"]

AUDIT_COLUMNS = ["name", "selection", "source", "rule", "policy_version"]
MAX_SELECTED = 2  # the OLS prior accepts one factor or an ordered pair

# --- name facts (factorlasso 1.0.6's vocabulary) --------------------------------------------

_BROAD_EQUITY = re.compile(
    r"^(?:eq )?(?:acwi|us|uk|europe|eu|japan|swiss|ac asia|asia|em|world|"
    r"north america|global equity)"
    r"(?: chf| xuk| xswiss| sli| msci| xjp| xasia| ex japan| ex asia| dm| hedged)*$")
_NOT_EQUITY = re.compile(
    r"\b(?:bonds?|debt|credit|fixed income|treasury|cash|commodit(?:y|ies)|hedge fund)\b")
# MSCI market names that count as a broad index (country, region or world)
_MSCI_BROAD_MARKETS = frozenset({
    "acwi", "ac world", "world", "usa", "us", "uk", "europe", "emu", "japan",
    "switzerland", "canada", "france", "germany", "netherlands", "italy",
    "spain", "norway", "australia", "hong kong", "singapore free", "china",
    "brazil", "saudi arabia", "emerging", "em asia", "em ex asia",
    "emerging markets", "emerging latin america", "emerging markets india",
    "emerging markets korea", "emerging markets taiwan",
    "emerging markets mexico", "emerging markets south africa",
    "emerging markets poland", "emerging markets europe middle east africa",
    "europe ex uk ex switzerland", "europe ex switzerland ex uk",
    "ac asia pacific ex japan", "pacific ex japan",
})
# what follows the market in an MSCI index name (tried in this order)
_MSCI_SUFFIXES = (" net total return ", " net return ", " gross total return ",
                  " 100 hedged to ", " hedged to ", " net ", " index")


def _has(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None


def _clean_name(value: object) -> str:
    """Lower-case words of a description, punctuation as spaces ('' for a non-string)."""
    if not isinstance(value, str):
        return ""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", value.casefold()).split())


def _clean_ticker(value: object) -> str:
    """The form under which tickers are compared (upper case, single spaces)."""
    return " ".join(str(value).upper().split())


# --- rules: each returns (selection or None, rule name) -------------------------------------

def _msci_market(name: str) -> str | None:
    """The market part of an ``msci <market> <return type>`` name, or None."""
    if not name.startswith("msci "):
        return None
    rest = name[len("msci "):]
    suffix = next((s for s in _MSCI_SUFFIXES if s in rest), None)
    return None if suffix is None else rest.split(suffix, 1)[0]


def _is_broad_index(name: str) -> bool:
    if _BROAD_EQUITY.fullmatch(name):
        return True
    if _NOT_EQUITY.search(name):
        return False
    market = _msci_market(name)
    if market is not None:  # an MSCI name is broad exactly when its market is
        return market in _MSCI_BROAD_MARKETS
    return (_has(r"\bunited kingdom large (?:and )?mid cap net return index\b", name)
            or name == "sli swiss leader perform")


def _equity_rule(name: str):
    if _is_broad_index(name):
        return "Equity", "broad_equity_name"
    # listed property is equity with rate sensitivity; private or mortgage funds are not
    if not (_NOT_EQUITY.search(name) or _has(r"\b(?:private|mortgage)\b", name)) and (
            _has(r"\b(?:listed|equity) reits?\b", name)
            or any(name.startswith("msci world real estate" + s) for s in _MSCI_SUFFIXES)):
        return ("Rates", "Equity"), "listed_real_estate"
    return None, "no_rule"


def _commodity_rule(name: str):
    # producers, miners and baskets carry more than the metal or the barrel
    if _has(r"\b(?:mining|miners?|producers?|equity|gas|silver|agriculture|metals)\b", name):
        return None, "unsupported_or_mixed_commodity"
    hits = [factor for word, factor in (("gold", "Gold"), ("oil", "Oil"))
            if _has(rf"\b{word}\b", name)]
    if len(hits) > 1:
        return None, "mixed_factor_name"
    return (hits[0], "dedicated_commodity") if hits else (None, "no_rule")


def _fixed_income_rule(name: str):
    flag = {key: _has(pattern, name) for key, pattern in (
        ("il", r"\b(?:il bonds?|inflation linked|inflation notes?|tips)\b"),
        ("hy", r"\b(?:hy|high yield)\b"),
        ("em", r"\b(?:em|emerging markets?|c?embi)\b"),
        ("ig", r"\b(?:ig|investment grade)\b"),
        ("ig_index", r"\b(?:corporates?|global (?:aggregate|agg)|aaa bbb)\b"),
        ("govt", r"\b(?:treasur(?:y|ies)|government|govt|sovereign)\b"),
        ("corporate", r"\bcorporates?\b"),
        ("muni", r"\b(?:municipal|muni) bonds?\b"),
        ("securitized", r"\bsecuriti[sz]ed bonds?\b"),
        ("coco", r"\b(?:cocos?|contingent convertibles?)\b"),
        ("convertible", r"\bconvertibles?\b"),
        ("preferred", r"\bpreferred\b"),
        ("floating", r"\b(?:floating rate|floaters?)\b"),
        ("local", r"\blocal (?:currency|rates?)\b"),
        ("arbitrage", r"\barbitrage\b"),
    )}
    convertible = flag["convertible"] and not flag["coco"]
    if flag["em"] and flag["local"]:  # local-currency EM is rates/FX, not EM credit
        return None, "unsupported_em_local_currency"
    if (flag["govt"] and flag["corporate"]) or (
            (flag["muni"] or flag["securitized"]) and (flag["hy"] or flag["em"])):
        return None, "mixed_factor_name"
    # "corporate" or "aggregate" alone means IG only when no other rule claims the name
    claims_other = any(flag[k] for k in ("il", "hy", "em", "govt", "muni", "securitized",
                                         "preferred")) or convertible
    ig = flag["ig"] or (flag["ig_index"] and not claims_other)
    credit = [(sel, rule) for sel, rule, hit in (
        (("Rates", "Inflation"), "inflation_linked", flag["il"]),
        ("Credit IG", "investment_grade" if flag["ig"] else "investment_grade_index_name", ig),
        ("Credit HY", "high_yield", flag["hy"]),
        ("Credit EM", "em_bonds", flag["em"])) if hit]
    if len(credit) > 1:
        return None, "mixed_factor_name"
    if flag["coco"]:  # a CoCo is priced off its rating: without one, no rule
        return credit[0] if credit else (None, "coco_rating_unspecified")
    if convertible or flag["preferred"]:  # equity optionality on top of duration
        if credit or flag["floating"] or flag["arbitrage"]:
            return None, "mixed_factor_name"
        return ("Rates", "Equity"), "convertible" if convertible else "preferred"
    if credit:
        return credit[0]
    if flag["floating"]:
        return None, "floating_rate_quality_unspecified"
    if flag["govt"]:
        return "Rates", "government_rates"
    if flag["muni"]:
        return "Rates", "municipal_rates_proxy"
    if flag["securitized"]:
        return "Rates", "securitized_rates_proxy"
    return None, "no_rule"


_FIXED_INCOME_CLASSES = ("", "bonds", "bond", "fixed income", "hybrid", "hybrids")


def _name_rule(name: str, asset_class: str):
    """The rule for one description, gated by its (cleaned) asset class ('' when none)."""
    if asset_class in ("equity", "equities") or (not asset_class and name.startswith("eq ")):
        return _equity_rule(name)
    if asset_class in _FIXED_INCOME_CLASSES:
        return _fixed_income_rule(name)
    if asset_class in ("commodity", "commodities"):
        return _commodity_rule(name)
    return None, "no_rule"


def _checked_selection(ticker, selected):
    """A selection as None, a factor name or a tuple of distinct names (else ValueError)."""
    if selected is None:
        return None
    if isinstance(selected, (list, tuple)):
        if len(selected) > MAX_SELECTED:
            raise ValueError(f"expert-prior selection for {ticker!r} names {len(selected)} "
                             f"factors {list(selected)!r}; at most {MAX_SELECTED} are allowed")
        if (not selected or len(set(selected)) != len(selected)
                or any(not isinstance(f, str) or not f.strip() for f in selected)):
            raise ValueError(f"expert-prior selection for {ticker!r} must list distinct "
                             f"nonblank factor names, got {selected!r}")
        return tuple(selected)
    if not isinstance(selected, str) or not selected.strip():
        raise ValueError(f"expert-prior selection for {ticker!r} must be a nonblank factor "
                         f"name or a list of them, got {selected!r}")
    return selected


# --- public ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExpertPriorResolution:
    """The outcome of :func:`map_expert_factor_priors`.

    Attributes
    ----------
    selection : pandas.Series
        Response-indexed, named ``factor_for_prior``: a factor name, an ordered tuple of two,
        or None (the estimator's automatic highest-R2 choice). Pass it as
        ``LassoModel(apply_ols_prior=True, factor_for_prior=selection)``.
    audit : pandas.DataFrame
        Response-indexed columns ``name`` (the description given), ``selection`` (pairs
        joined by ``" + "``), ``source`` (override, name, ambiguous, automatic,
        unavailable), ``rule`` (which rule decided) and ``policy_version``.
    """

    selection: pd.Series
    audit: pd.DataFrame


def _validated_inputs(ticker_to_name, factor_names, asset_class, ticker_overrides):
    if not isinstance(ticker_to_name, pd.Series):
        raise TypeError("ticker_to_name must be a pandas Series (ticker -> description), got "
                        f"{type(ticker_to_name).__name__}")
    if not ticker_to_name.index.is_unique:
        repeated = sorted(map(str, ticker_to_name.index[ticker_to_name.index.duplicated()]))
        raise ValueError(f"expert-prior tickers must be unique; repeated: {repeated}")
    keys = [_clean_ticker(t) for t in ticker_to_name.index]
    if len(set(keys)) != len(keys) or any(k in ("", "NAN", "NONE") for k in keys):
        raise ValueError("expert-prior tickers must be nonempty and unique after normalisation "
                         "(upper case, single spaces); blank, NaN or None tickers are refused")
    if asset_class is not None:
        if not isinstance(asset_class, pd.Series):
            raise TypeError("asset_class must be a pandas Series (ticker -> class), got "
                            f"{type(asset_class).__name__}")
        if (not asset_class.index.is_unique
                or not ticker_to_name.index.isin(asset_class.index).all()):
            raise ValueError("asset_class must have one entry for every ticker of "
                             "ticker_to_name (and no repeated ticker)")
    if isinstance(factor_names, str) or not isinstance(factor_names, Collection):
        raise TypeError("factor_names must be a collection of factor names (or a mapping "
                        f"keyed by them), got {type(factor_names).__name__}")
    factors = list(factor_names)
    if (not factors or len(set(factors)) != len(factors)
            or any(not isinstance(f, str) or not f.strip() for f in factors)):
        raise ValueError(f"factor_names must be nonempty, distinct, nonblank strings, got "
                         f"{factors!r}")
    if ticker_overrides is not None and not isinstance(ticker_overrides, Mapping):
        raise TypeError("ticker_overrides must be a mapping (ticker -> factor or list), got "
                        f"{type(ticker_overrides).__name__}")
    overrides = {_clean_ticker(t): s for t, s in (ticker_overrides or {}).items()}
    if len(overrides) != len(ticker_overrides or {}):
        raise ValueError("expert-prior override tickers must be unique after normalisation "
                         "(upper case, single spaces)")
    return keys, set(factors), overrides


def map_expert_factor_priors(ticker_to_name, factor_names, *, asset_class=None,
                             ticker_overrides=None, policy_version=None):
    """Propose each response's OLS-prior factor(s) from its description.

    Parameters
    ----------
    ticker_to_name : pandas.Series
        Descriptions (e.g. ``"MSCI World Net Total Return USD Index"``) indexed by unique
        tickers (the response names of ``y``).
    factor_names : collection of str or mapping
        The model's factors (e.g. ``x.columns``); a mapping contributes its keys.
    asset_class : pandas.Series, optional
        Broad class per ticker (equity, bonds, fixed income, hybrid, commodity, ...). It
        decides which rules apply; without it (or for a missing class) the fixed-income
        rules apply, and the equity rules to names starting ``"EQ "``.
    ticker_overrides : mapping, optional
        Reviewed selections, ticker -> factor or ordered list of at most 2 factors; they win
        over the name rules. Tickers are matched case- and space-insensitively.
    policy_version : str, optional
        A label of your mapping policy, copied into the audit.

    Returns
    -------
    ExpertPriorResolution
        ``selection`` for ``factor_for_prior`` and the ``audit`` of every decision.

    Raises
    ------
    TypeError
        A wrong container type for an argument.
    ValueError
        Repeated or blank tickers, an ``asset_class`` not covering every ticker, bad
        factor names, or a selection that is not one factor or two distinct ones.

    Warns
    -----
    UserWarning
        When a selection names a factor not in ``factor_names``: that response falls back
        to automatic selection (source ``unavailable``).
    """
    keys, known, overrides = _validated_inputs(ticker_to_name, factor_names, asset_class,
                                               ticker_overrides)
    selection = pd.Series(None, index=ticker_to_name.index, name="factor_for_prior",
                          dtype=object)
    rows, missing = [], {}
    for ticker, key in zip(ticker_to_name.index, keys, strict=True):
        chosen = overrides.get(key)
        if chosen is not None:
            source, rule = "override", "reviewed_override"
        else:
            category = "" if asset_class is None else _clean_name(asset_class.loc[ticker])
            chosen, rule = _name_rule(_clean_name(ticker_to_name.loc[ticker]), category)
            source = ("name" if chosen is not None
                      else "ambiguous" if rule == "mixed_factor_name" else "automatic")
        chosen = _checked_selection(ticker, chosen)
        absent = [f for f in (chosen if isinstance(chosen, tuple) else (chosen,))
                  if f is not None and f not in known]
        if absent:
            missing[str(ticker)] = absent
            chosen, source, rule = None, "unavailable", "factor_absent_from_model"
        selection.at[ticker] = chosen
        rows.append([ticker_to_name.loc[ticker],
                     " + ".join(chosen) if isinstance(chosen, tuple) else chosen,
                     source, rule, policy_version])
    if missing:
        warnings.warn("expert prior factors absent from this model; retaining automatic "
                      f"selection for {missing!r}", UserWarning, stacklevel=2)
    audit = pd.DataFrame(rows, index=ticker_to_name.index, columns=AUDIT_COLUMNS)
    return ExpertPriorResolution(selection=selection, audit=audit)
