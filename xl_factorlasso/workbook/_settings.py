"""``key | value`` settings -> estimator parameters, validated with the cell of each value."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass

from ..core import LassoModelType
from ._tables import Block, is_blank, parse_keyvalue

__all__ = [
    "CV_KEYS",
    "FitSettings",
    "MODEL_KEYS",
    "PORTFOLIO_KEYS",
    "REPORT_KEYS",
    "read_fit_settings",
]


def _text(v) -> str:
    return str(v).strip()


def _float(v) -> float:
    if isinstance(v, bool):
        raise ValueError("expected a number, got TRUE/FALSE")
    if isinstance(v, numbers.Real):
        return float(v)
    return float(_text(v))


def _opt(conv: Callable) -> Callable:
    def parse(v):
        if isinstance(v, str) and v.strip().lower() in ("none", "off", "no"):
            return None
        return conv(v)

    return parse


def _int(v) -> int:
    f = _float(v)
    if not f.is_integer():
        raise ValueError(f"expected a whole number, got {v!r}")
    return int(f)


def _bool(v) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, numbers.Real) and float(v) in (0.0, 1.0):
        return bool(v)
    t = _text(v).lower()
    if t in ("true", "yes", "y", "1", "on"):
        return True
    if t in ("false", "no", "n", "0", "off"):
        return False
    raise ValueError(f"expected TRUE or FALSE, got {v!r}")


def _model_type(v) -> str:
    return LassoModelType.parse(v).name


def _lambdas(v):
    """``auto``, ``default`` or numbers separated by commas or semicolons."""
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return [float(v)]
    t = _text(v).lower()
    if t == "auto":
        return "auto"
    if t == "default":
        return None
    return [float(p) for p in t.replace(";", ",").split(",") if p.strip()]


#: LassoModel parameters a sheet can set, with their parsers.
MODEL_KEYS: dict[str, Callable] = {
    "model_type": _model_type,
    "reg_lambda": _float,
    "span": _opt(_float),
    "demean": _bool,
    "cutoff_fraction": _float,
    "n_clusters": _opt(_int),
    "linkage_method": lambda v: _text(v).lower(),
    "group_penalty": lambda v: _text(v).lower(),
    "l1_weight": _float,
    "nonneg": _bool,
    "warmup_period": _opt(_int),
    "solver": lambda v: _text(v).upper(),
}
#: Cross-validation and reporting settings.
CV_KEYS: dict[str, Callable] = {
    "cv_splits": _int,
    "cv_lambdas": _lambdas,
    "cv_n_lambdas": _int,
    "cv_lambda_min_ratio": _float,
}
REPORT_KEYS: dict[str, Callable] = {"annualization_factor": _float}


@dataclass
class FitSettings:
    """Parsed ``FL_SETTINGS``: model parameters, CV parameters, annualisation."""

    model: dict
    cv: dict
    annualization_factor: float = 1.0


def _parse(block: Block, keys: dict[str, Callable]) -> dict:
    out = {}
    for key, (value, _cell, (i, j)) in parse_keyvalue(block).items():
        if key not in keys:
            known = ", ".join(sorted(keys))
            raise block.error(f"unknown setting {key!r}; known settings: {known}", i, 0)
        if is_blank(value):
            continue
        try:
            out[key] = keys[key](value)
        except (ValueError, TypeError) as err:
            raise block.error(f"{key}: {err}", i, j) from None
    return out


def read_fit_settings(block: Block | None) -> FitSettings:
    """Parse the factor-model settings (``FL_SETTINGS`` or a function's ``settings``)."""
    if block is None:
        return FitSettings({}, {})
    parsed = _parse(block, {**MODEL_KEYS, **CV_KEYS, **REPORT_KEYS})
    model = {k: v for k, v in parsed.items() if k in MODEL_KEYS}
    cv = {k: v for k, v in parsed.items() if k in CV_KEYS}
    return FitSettings(model, cv, parsed.get("annualization_factor", 1.0))


PORTFOLIO_KEYS: dict[str, Callable] = {
    "covariance": lambda v: _text(v).lower(),
    "span": _opt(_float),
    "min_weights": _opt(_float),
    "max_weights": _opt(_float),
    "budget": _opt(_float),
    "min_budget": _opt(_float),
    "max_budget": _opt(_float),
    "max_short": _opt(_float),
    "max_long": _opt(_float),
    "transaction_costs": _float,
    "management_fees": _float,
    "l1_coef": _float,
    "l2_coef": _float,
    "risk_free_rate": _float,
    "min_return": _opt(_float),
    "max_turnover": _opt(_float),
    "solver": lambda v: _text(v).upper(),
}
