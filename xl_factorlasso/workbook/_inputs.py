"""Factor-model inputs checked against each other (workbook jobs and worksheet functions).

Both hosts hand over labelled blocks (named ranges ``FL_RETURNS``, ... or function arguments
``returns``, ...); the messages name whichever they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import LassoModelType
from ._errors import WorkbookInputError
from ._settings import read_fit_settings
from ._tables import Block, is_blank, is_error, parse_matrix, parse_series, parse_sign

__all__ = [
    "FitInputs",
    "check_labels",
    "find_label",
    "fit_inputs",
    "matrix_cell",
    "same_dates",
    "show_label",
    "tag_cell",
    "text_cell",
]


def show_label(v) -> str:
    """A date or label as people write it (``2019-01-04``, ``3``, ``SPX``)."""
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat() if v == v.normalize() else v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _label_text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def find_label(block: Block, label: str, axis: int) -> tuple[int, int] | None:
    """Position of ``label`` in a labelled block: first column (axis 0) or header row (1)."""
    b = block.trimmed()
    if axis == 0:
        for i, row in enumerate(b.values):
            if i and row and not is_blank(row[0]) and _label_text(row[0]) == label:
                return i, 0
    elif b.values:
        for j, v in enumerate(b.values[0]):
            if j and not is_blank(v) and _label_text(v) == label:
                return 0, j
    return None


def matrix_cell(block: Block, row_label: str, col_label: str) -> str:
    """Address of the cell at (row label, column label) of a labelled matrix."""
    i = (find_label(block, row_label, 0) or (0, 0))[0]
    j = (find_label(block, col_label, 1) or (0, 0))[1]
    return block.trimmed().cell(i, j)


def check_labels(block: Block, labels, known, *, axis: int, what: str, source: str) -> None:
    """Every label must be known; name the first stranger and its cell."""
    known = set(known)
    for label in labels:
        if label in known:
            continue
        hint = ""
        try:
            float(label)
            missing = "header row" if axis == 1 else "first column"
            hint = f" (a number as a {what} name: is the {missing} of {what} names missing?)"
        except ValueError:
            pass
        pos = find_label(block, label, axis)
        raise block.trimmed().error(
            f"{what} {label!r} is not in {source}{hint}", *(pos if pos else (None, None))
        )


def same_dates(returns: pd.DataFrame, factors: pd.DataFrame, names: tuple[str, str]) -> None:
    """Returns and factors must have the same dates (name the first one found in only one)."""
    if returns.index.equals(factors.index):
        return
    r_name, f_name = names
    kinds = {"date": "dates", "period": "numbers (periods or Excel serial dates)"}
    if returns.index.name != factors.index.name:
        raise WorkbookInputError(
            f"the first column holds {kinds.get(returns.index.name, 'labels')} but that of "
            f"{f_name} holds {kinds.get(factors.index.name, 'labels')}; use the same kind of "
            "dates in both",
            name=r_name,
        )
    only_r = returns.index[~returns.index.isin(factors.index)]
    only_f = factors.index[~factors.index.isin(returns.index)]
    both = f"{r_name} and {f_name} must have the same dates ({len(returns)} vs {len(factors)} rows)"
    if len(only_r):
        raise WorkbookInputError(
            f"date {show_label(only_r[0])} has no row in {f_name}: {both}", name=r_name
        )
    if len(only_f):
        raise WorkbookInputError(
            f"date {show_label(only_f[0])} has no row in {r_name}: {both}", name=f_name
        )
    raise WorkbookInputError(
        f"{r_name} and {f_name} list the same dates in a different order", name=f_name
    )


def tag_cell(block: Block, i: int, j: int) -> str:
    """A grouping tag (``FL_ASSET_GROUPS``, ``groups``); blank means "no group of this kind"."""
    v = block.values[i][j]
    if is_blank(v):
        return ""
    if is_error(v):
        raise block.error(f"{v.strip()} is an Excel error value", i, j)
    return _label_text(v)


def text_cell(block: Block, i: int, j: int) -> str:
    """A label cell (a group or tag); a blank is an error."""
    v = block.values[i][j]
    if is_blank(v):
        raise block.error("the group is blank", i, j)
    return _label_text(v)


@dataclass
class FitInputs:
    """Validated factor-model inputs.

    Attributes
    ----------
    returns, factors : pandas.DataFrame
    params : dict
        ``LassoModel`` parameters.
    sources : dict
        Parameter -> the input (range or argument name) that set it, for messages.
    cv : dict
        Cross-validation settings (``cv_splits``, ``cv_lambdas``, ...).
    annualization_factor : float
    settings : Block or None
    """

    returns: pd.DataFrame
    factors: pd.DataFrame
    params: dict
    sources: dict
    cv: dict
    annualization_factor: float
    settings: Block | None


def fit_inputs(
    returns: pd.DataFrame,
    factors: pd.DataFrame,
    *,
    names: tuple[str, str] = ("FL_RETURNS", "FL_FACTORS"),
    signs: Block | None = None,
    prior: Block | None = None,
    groups: Block | None = None,
    settings: Block | None = None,
    overrides: dict | None = None,
    require_groups: bool = True,
) -> FitInputs:
    """Check the inputs against each other and build ``LassoModel`` parameters.

    Parameters
    ----------
    returns, factors : pandas.DataFrame
        Parsed panels; ``names`` are what messages call them.
    signs, prior, groups, settings : Block, optional
    overrides : dict, optional
        ``{parameter: (value, source name)}`` that win over ``settings`` (explicit arguments of
        a worksheet function).
    require_groups : bool, default True
        ``GROUP_LASSO`` needs a group for every asset; with ``False`` the caller checks.
    """
    r_name, f_name = names
    same_dates(returns, factors, names)
    fs = read_fit_settings(settings)
    params = dict(fs.model)
    sources = dict.fromkeys(params, settings.name if settings is not None else "settings")
    for key, (value, source) in (overrides or {}).items():
        params[key] = value
        sources[key] = source
    assets, facs = list(returns.columns), list(factors.columns)
    sign_frame = None
    if signs is not None and not signs.is_empty():
        sign_frame = parse_matrix(signs, cell=parse_sign)
        check_labels(signs, sign_frame.index, assets, axis=0, what="asset", source=r_name)
        check_labels(signs, sign_frame.columns, facs, axis=1, what="factor", source=f_name)
        sign_frame = sign_frame.reindex(index=assets, columns=facs)
        params["factors_beta_loading_signs"] = sign_frame
        sources["factors_beta_loading_signs"] = signs.name
    if prior is not None and not prior.is_empty():
        prior_frame = parse_matrix(prior)
        check_labels(prior, prior_frame.index, assets, axis=0, what="asset", source=r_name)
        check_labels(prior, prior_frame.columns, facs, axis=1, what="factor", source=f_name)
        prior_frame = prior_frame.reindex(index=assets, columns=facs)
        if sign_frame is not None:
            s, p = sign_frame.to_numpy(), np.nan_to_num(prior_frame.to_numpy())
            bad = ((s == 0) & (p != 0)) | ((s == 1) & (p < 0)) | ((s == -1) & (p > 0))
            if bad.any():
                i, j = np.argwhere(bad)[0]
                a, f = assets[i], facs[j]
                s_cell = matrix_cell(signs, a, f)
                at = (
                    f"{signs.name}!{s_cell}"
                    if signs.row is not None
                    else (f"{signs.name} ({s_cell})")
                )
                pi, pj = find_label(prior, a, 0)[0], find_label(prior, f, 1)[1]
                raise prior.trimmed().error(
                    f"the prior {p[i, j]:g} for ({a}, {f}) contradicts the sign "
                    f"{int(s[i, j])} at {at}",
                    pi,
                    pj,
                )
        params["factors_beta_prior"] = prior_frame
        sources["factors_beta_prior"] = prior.name
    if groups is not None and not groups.is_empty():
        group_series = parse_series(groups, value=text_cell)
        check_labels(groups, group_series.index, assets, axis=0, what="asset", source=r_name)
        params["group_data"] = group_series
        sources["group_data"] = groups.name
    model_type = LassoModelType.parse(params.get("model_type", "LASSO"))
    if require_groups and model_type is LassoModelType.GROUP_LASSO:
        gd = params.get("group_data")
        missing = [a for a in assets if gd is None or a not in gd.index]
        if missing:
            raise WorkbookInputError(
                f"model_type GROUP_LASSO needs a group for every asset; {missing[0]!r} has none",
                groups.name if groups is not None else "FL_GROUPS",
            )
    return FitInputs(returns, factors, params, sources, fs.cv, fs.annualization_factor, settings)
