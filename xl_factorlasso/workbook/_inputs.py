"""Factor-model inputs checked against each other (workbook jobs and worksheet functions).

Both hosts hand over labelled blocks (named ranges ``FL_RETURNS``, ... or function arguments
``returns``, ...); the messages name whichever they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core import LassoModelType
from ..core.linear_model._lasso_model import MIN_ROWS
from ._errors import WorkbookInputError
from ._plausibility import MAX_ABS_RETURN, OVERFLOW_LIMIT, check_plausible
from ._settings import read_fit_settings, resolve_sign_span
from ._tables import (
    Block,
    cell_problem,
    is_blank,
    parse_matrix,
    parse_series,
    parse_sign,
    shown,
)

__all__ = [
    "FitInputs",
    "check_cv",
    "check_labels",
    "find_label",
    "fit_inputs",
    "matrix_cell",
    "parse_excluded",
    "parse_prior_factors",
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
        # the first row last: a header, unless its first cell is no header word (asset |
        # value rows without one: parse_series reads it as the first label)
        for i in [*range(1, len(b.values)), 0]:
            row = b.values[i]
            if row and not is_blank(row[0]) and _label_text(row[0]) == label:
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
            article = "an" if what[:1] in "aeiou" else "a"
            hint = (f" (a number as {article} {what} name: is the {missing} of {what} names "
                    "missing?)")
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
    problem = cell_problem(v, "; leave the cell blank for no group")
    if problem is not None:
        raise block.error(problem, i, j)
    return _label_text(v)


def text_cell(block: Block, i: int, j: int) -> str:
    """A label cell (a group or tag); a blank is an error."""
    v = block.values[i][j]
    if is_blank(v):
        raise block.error("the group is blank", i, j)
    problem = cell_problem(v)
    if problem is not None:
        raise block.error(problem, i, j)
    return _label_text(v)


def _listed_rows(block: Block):
    """``(trimmed block, row, values)`` of every filled row of an ``asset | ...`` list, after
    an optional header row (first cell ``asset`` or ``response``)."""
    b = block.trimmed()
    if b.shape[0] == 0:
        return
    start = 1 if isinstance(b.values[0][0], str) and b.values[0][0].strip().lower() in (
        "asset", "response") else 0
    for i in range(start, b.shape[0]):
        row = b.values[i]
        if not all(is_blank(v) for v in row):
            yield b, i, row


def parse_prior_factors(block: Block) -> list[tuple[str, list[str], int, list[int]]]:
    """``asset | factor [| second factor]`` rows (``FL_PRIOR_FACTOR``): the factors an asset's
    OLS prior is taken on (factorlasso's ``factor_for_prior``).

    An optional header row (first cell ``asset``) is skipped, as are blank rows. Returns
    ``(asset, factors, row, factor columns)`` per row, positions inside the trimmed block; a
    blank or repeated asset, an asset without a factor, a factor named twice or more than two
    factors is an error naming the cell.
    """
    rows, seen = [], {}
    for b, i, row in _listed_rows(block):
        if is_blank(row[0]):
            raise b.error("the asset is blank (each row: asset | factor | optional second "
                          "factor)", i, 0)
        asset = text_cell(b, i, 0)
        if asset in seen:
            raise b.error(f"{asset!r} is listed twice (first at {b.cell(seen[asset], 0)})", i, 0)
        seen[asset] = i
        cols = [j for j in range(1, b.shape[1]) if not is_blank(row[j])]
        if not cols:
            raise b.error(f"no factor given for {asset!r}", i, 1)
        factors = []
        for j in cols:
            name = text_cell(b, i, j)  # not blank (cols)
            if name in factors:
                raise b.error(f"{name!r} is named twice for {asset!r}", i, j)
            if len(factors) == 2:
                raise b.error(f"a third factor for {asset!r}: a named prior uses one or two "
                              "factors", i, j)
            factors.append(name)
        rows.append((asset, factors, i, cols))
    return rows


def parse_excluded(block: Block) -> list[tuple[str, str, int]]:
    """``asset | factor`` rows (``FL_EXCLUDED``): loadings pinned to 0 (factorlasso's
    ``excluded_factors``), one pair per row, several rows per asset allowed.

    An optional header row (first cell ``asset``) is skipped, as are blank rows. Returns
    ``(asset, factor, row)`` per pair, the row inside the trimmed block; a blank asset or
    factor, a third filled column or a pair listed twice is an error naming the cell.
    """
    pairs, seen = [], {}
    for b, i, row in _listed_rows(block):
        if is_blank(row[0]):
            raise b.error("the asset is blank (each row: asset | factor)", i, 0)
        asset = text_cell(b, i, 0)
        if b.shape[1] < 2 or is_blank(row[1]):
            raise b.error(f"no factor given for {asset!r} (each row: asset | factor)", i, 1)
        factor = text_cell(b, i, 1)  # not blank (checked above)
        extra = next((j for j in range(2, b.shape[1]) if not is_blank(row[j])), None)
        if extra is not None:
            raise b.error(f"one pair per row (asset | factor): list another factor of "
                          f"{asset!r} on a row of its own", i, extra)
        if (asset, factor) in seen:
            raise b.error(f"({asset}, {factor}) is listed twice (first at "
                          f"{b.cell(seen[asset, factor], 0)})", i, 1)
        seen[asset, factor] = i
        pairs.append((asset, factor, i))
    return pairs


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
    cells : dict
        Parameter -> :class:`~._settings.SettingCell` of the value that set it (settings or
        overrides), for messages that need the data.
    names : tuple of str
        What messages call the returns and the factors (``FL_RETURNS``, ``returns``, ...).
    max_abs_return : float or None
        The plausibility bound the returns were checked with (for other panels of the same
        fit, e.g. the scenario factors of ``FLASSO_PREDICT``).
    """

    returns: pd.DataFrame
    factors: pd.DataFrame
    params: dict
    sources: dict
    cv: dict
    annualization_factor: float
    settings: Block | None
    cells: dict = field(default_factory=dict)
    names: tuple[str, str] = ("FL_RETURNS", "FL_FACTORS")
    max_abs_return: float | None = MAX_ABS_RETURN

    def setting_error(self, param: str, message: str) -> WorkbookInputError:
        """``message`` about the value of ``param`` (it starts with the value), on its cell.

        The value's cell when it has one, else the argument that gave it, else (a default) the
        settings input with "the default <param>".
        """
        cell = self.cells.get(param)
        if cell is not None:
            return cell.error(message)
        if param in self.sources:
            return WorkbookInputError(f"{param} {message}", name=self.sources[param])
        name = _settings_name(self.settings, self.names)
        return WorkbookInputError(f"the default {param} {message}", name=name)


def _settings_name(settings: Block | None, names: tuple[str, str]) -> str:
    """The settings input: its name, or where the settings would be (``FL_SETTINGS`` in a
    workbook, the ``settings`` argument of a worksheet function)."""
    if settings is not None:
        return settings.name
    return "FL_SETTINGS" if names[0].startswith("FL_") else "settings"


def _usable_rows(n_dates: int, params: dict) -> tuple[int, bool]:
    """Rows the fit keeps of ``n_dates`` and whether demeaning dropped one (the core's rule:
    with a span, the EWMA demeaning drops the first row, whose mean is the value itself)."""
    dropped = params.get("span") is not None and bool(params.get("demean", True))
    return n_dates - int(dropped), dropped


def _warmup(params: dict) -> int:
    """The warmup_period of the fit (LassoModel's default 12; ``None``: no warmup)."""
    w = params.get("warmup_period", 12)
    return 0 if w is None else int(w)


_FROM_SETTINGS = object()


def fit_inputs(
    returns: pd.DataFrame,
    factors: pd.DataFrame,
    *,
    names: tuple[str, str] = ("FL_RETURNS", "FL_FACTORS"),
    signs: Block | None = None,
    prior: Block | None = None,
    groups: Block | None = None,
    settings: Block | None = None,
    prior_factors: Block | None = None,
    excluded: Block | None = None,
    exposure_budget: Block | None = None,
    overrides: dict | None = None,
    require_groups: bool = True,
    blocks: tuple[Block | None, Block | None] = (None, None),
    cv: bool = False,
    max_abs_return=_FROM_SETTINGS,
) -> FitInputs:
    """Check the inputs against each other and build ``LassoModel`` parameters.

    Everything the fit would reject, or would accept and answer meaninglessly, is refused here
    with the input and the cell: implausible returns (:func:`~._plausibility.check_plausible`
    with the ``max_abs_return`` of the settings), fewer dates than the fit needs,
    ``n_clusters`` above the number of assets, a ``warmup_period`` no asset reaches and, with
    ``cv``, more folds than the dates allow (:func:`check_cv`).

    Parameters
    ----------
    returns, factors : pandas.DataFrame
        Parsed panels; ``names`` are what messages call them.
    signs, prior, groups, settings : Block, optional
    prior_factors : Block, optional
        ``FL_PRIOR_FACTOR`` (:func:`parse_prior_factors`): ``factor_for_prior``; needs
        ``apply_ols_prior`` in the settings.
    excluded : Block, optional
        ``FL_EXCLUDED`` (:func:`parse_excluded`): ``excluded_factors``.
    exposure_budget : Block, optional
        ``FL_EXPOSURE_BUDGET``, assets x factors like ``prior``:
        ``expert_prior_exposure_budget``; needs ``apply_ols_prior``.
    overrides : dict, optional
        ``{parameter: (value, source name)}`` or ``{parameter: (value, source name,
        SettingCell)}`` that win over ``settings`` (explicit arguments of a worksheet
        function; the ``factor_*`` keys of the portfolio settings, see
        :meth:`~._portfolio.PortfolioSettings.model_overrides`).
    require_groups : bool, default True
        ``GROUP_LASSO`` needs a group for every asset; with ``False`` the caller checks.
    blocks : (Block or None, Block or None)
        The cells ``returns`` and ``factors`` were parsed from, so that an implausible value
        is named by its cell (without them: by its column and date).
    cv : bool, default False
        Also check the cross-validation folds against the dates.
    max_abs_return : float or None, optional
        The plausibility bound, when another input than ``settings`` sets it (the portfolio
        settings of ``FLASSO_MAXDIV``); by default that of ``settings``.
    """
    r_name, f_name = names
    fs = read_fit_settings(settings)
    source = _settings_name(settings, names)
    bound = fs.max_abs_return if max_abs_return is _FROM_SETTINGS else max_abs_return
    check_plausible(returns, blocks[0] or r_name, bound=bound, what="return", source=source)
    check_plausible(factors, blocks[1] or f_name, bound=bound, what="factor return", source=source)
    same_dates(returns, factors, names)
    params = dict(fs.model)
    sources = dict.fromkeys(params, source)
    cells = dict(fs.cells)
    for key, (value, origin, *where) in (overrides or {}).items():
        params[key] = value  # checked by whoever read it (an argument, the portfolio settings)
        sources[key] = origin
        cells.pop(key, None)
        if where and where[0] is not None:
            cells[key] = where[0]
    resolve_sign_span(params)
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
        _check_prior_size(prior, prior_frame)
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
    named = (_prior_factors(prior_factors, params, assets, facs, names)
             if prior_factors is not None else None)
    if named:  # a header alone (the empty template table) names nothing
        params["factor_for_prior"] = named
        sources["factor_for_prior"] = prior_factors.name
    model_type = LassoModelType.parse(params.get("model_type", "LASSO"))
    if excluded is not None:
        out = _excluded_factors(excluded, params, model_type, assets, facs, names,
                                prior_factors, prior)
        if out:  # a header alone (the empty template table) pins nothing
            params["excluded_factors"] = out
            sources["excluded_factors"] = excluded.name
    if exposure_budget is not None and not exposure_budget.is_empty():
        budget = _exposure_budget(exposure_budget, params, model_type, assets, facs, names)
        if budget is not None:
            params["expert_prior_exposure_budget"] = budget
            sources["expert_prior_exposure_budget"] = exposure_budget.name
    if require_groups and model_type.uses_group_data:
        gd = params.get("group_data")
        missing = [a for a in assets if gd is None or a not in gd.index]
        if missing:
            raise WorkbookInputError(
                f"model_type {model_type.name} needs a group for every asset; {missing[0]!r} "
                "has none",
                groups.name if groups is not None else "FL_GROUPS",
            )
    inputs = FitInputs(
        returns, factors, params, sources, fs.cv, fs.annualization_factor, settings, cells, names,
        bound,
    )
    if model_type.name not in _HARD_CONSTRAINT_TYPES:
        # floors are hard constraints (the core refuses them): name the setting's cell
        for key in ("expert_prior_bound_n_std", "expert_prior_budget_rule"):
            value = params.get(key)
            if value is not None and value != "n_std":
                text = value if isinstance(value, str) else shown(value)
                raise inputs.setting_error(
                    key, f"{text} is not supported with model_type {model_type.name}, which "
                    f"takes no hard constraint (floors); {_HARD_REMEDY}")
    if (params.get("expert_prior_budget_rule") == "cluster_mean"
            and model_type.name not in _PARTITIONED_TYPES):
        raise inputs.setting_error(
            "expert_prior_budget_rule",
            f"cluster_mean needs clusters or groups: it is not supported with model_type "
            f"{model_type.name}; use GROUP_LASSO, HCGL or FCGL, or n_std")
    if model_type.is_cooperative:
        _check_cooperative(inputs, signs, sign_frame)
    if model_type is LassoModelType.UNILASSO:
        _check_unilasso(inputs, signs, prior)
    _check_against_data(inputs)
    if cv:
        check_cv(inputs)
    return inputs


def _check_prior_size(block: Block, prior: pd.DataFrame) -> None:
    """A prior loading whose square overflows cannot be computed with (the fit would fail
    after overflow warnings, or take minutes doing so): refused on its cell."""
    big = np.abs(prior.to_numpy(dtype=float)) > OVERFLOW_LIMIT  # NaN (blank) compares False
    if not big.any():
        return
    r, c = (int(k) for k in np.argwhere(big)[0])
    a, f = prior.index[r], prior.columns[c]
    i, j = find_label(block, a, 0)[0], find_label(block, f, 1)[1]
    raise block.trimmed().error(
        f"the prior {prior.iat[r, c]:g} for ({a}, {f}) is too large to compute with: its "
        "square overflows; a loading is the return per unit of factor return", i, j)


def _check_cooperative(inputs: FitInputs, signs: Block | None, sign_frame) -> None:
    """The cooperative types take no sign constraint (factorlasso refuses them too): a filled
    sign cell or ``nonneg = TRUE`` is an error on its cell; a sign matrix with every cell blank
    constrains nothing and is dropped."""
    kind = inputs.params["model_type"]
    why = (f"model_type {kind} takes no sign constraint (its penalty favours loadings of one "
           "sign within a group softly)")
    if sign_frame is not None:
        filled = np.argwhere(sign_frame.notna().to_numpy())
        if len(filled):
            a, f = sign_frame.index[filled[0][0]], sign_frame.columns[filled[0][1]]
            i, j = find_label(signs, a, 0)[0], find_label(signs, f, 1)[1]
            raise signs.trimmed().error(
                f"the sign of ({a}, {f}) is set, but {why}; clear {signs.name} or use FCGL",
                i, j)
        del inputs.params["factors_beta_loading_signs"]
        inputs.sources.pop("factors_beta_loading_signs", None)
    if inputs.params.get("nonneg"):
        raise inputs.setting_error("nonneg", f"TRUE is not allowed: {why}")


def _check_unilasso(inputs: FitInputs, signs: Block | None, prior: Block | None) -> None:
    """UNILASSO takes no signs and no prior (the core refuses them, as factorlasso does):
    a filled cell of either is named; a matrix of labels with blank cells is no input."""
    params = inputs.params
    for key, block, what in (("factors_beta_loading_signs", signs, "sign constraints"),
                             ("factors_beta_prior", prior, "prior")):
        frame = params.get(key)
        if frame is None:
            continue
        filled = frame.notna().to_numpy()
        if not filled.any():
            del params[key]
            inputs.sources.pop(key, None)
            continue
        i, j = np.argwhere(filled)[0]
        a, f = frame.index[i], frame.columns[j]
        message = (f"model_type UNILASSO takes no {what}, but the cell for ({a}, {f}) is "
                   f"filled; clear the cells of {block.name} or choose another model_type")
        if block is None:  # given another way: no cell to name
            raise WorkbookInputError(message, name=inputs.sources.get(key, key))
        pi, pj = find_label(block, a, 0)[0], find_label(block, f, 1)[1]
        raise block.trimmed().error(message, pi, pj)
    why = {
        "nonneg": "TRUE is not supported with model_type UNILASSO, which takes no sign "
                  "constraint (unilasso_non_negative keeps each loading's univariate sign)",
        "auto_sign_constraints": "TRUE is not supported with model_type UNILASSO, which takes "
                                 "no sign constraint (unilasso_non_negative keeps each "
                                 "loading's univariate sign)",
        "apply_ols_prior": "TRUE is not supported with model_type UNILASSO, which takes no "
                           "prior",
    }
    for key, message in why.items():
        if params.get(key):
            raise inputs.setting_error(key, message)
    if params.get("loss_normalization", "sample") != "sample":
        raise inputs.setting_error(
            "loss_normalization", "weight_sum is not supported with model_type UNILASSO, "
            "which divides each asset's loss by its own dates")


def _prior_factors(block: Block, params: dict, assets, facs, names) -> dict:
    """``factor_for_prior`` from ``FL_PRIOR_FACTOR``, every label checked against the panels."""
    rows = parse_prior_factors(block)
    b = block.trimmed()
    if rows and not params.get("apply_ols_prior"):
        raise b.error(f"names the factors of the OLS prior, which is off: set "
                      f"apply_ols_prior = TRUE in the settings, or clear {block.name}",
                      rows[0][2], 0)
    limit = params.get("max_named_factors", 2)
    out = {}
    for asset, factors, i, cols in rows:
        if asset not in assets:
            raise b.error(f"{asset!r} is not an asset of {names[0]}", i, 0)
        for name, j in zip(factors, cols, strict=False):
            if name not in facs:
                raise b.error(f"{name!r} is not a factor of {names[1]}", i, j)
        if len(factors) > limit:
            raise b.error(f"{asset!r} names {len(factors)} factors but max_named_factors is "
                          f"{limit}", i, cols[limit])
        out[asset] = factors[0] if len(factors) == 1 else list(factors)
    return out


#: The model types that take hard constraints (floors, exclusions), as the core.
_HARD_CONSTRAINT_TYPES = ("LASSO", "GROUP_LASSO", "HIERARCHICAL_CLUSTER_GROUP_LASSO",
                          "FACTOR_CLUSTER_GROUP_LASSO")
_HARD_REMEDY = "use LASSO, GROUP_LASSO, HCGL or FCGL"
#: The hard-constraint types with a partition of the assets (cluster_mean budgets).
_PARTITIONED_TYPES = _HARD_CONSTRAINT_TYPES[1:]


def _excluded_factors(block: Block, params: dict, model_type, assets, facs, names,
                      prior_factors: Block | None, prior: Block | None) -> dict:
    """``excluded_factors`` from ``FL_EXCLUDED``, every pair checked against the panels and
    against the priors that would contradict it (the core's refusals, named on the cell)."""
    pairs = parse_excluded(block)
    b = block.trimmed()
    if pairs and model_type.name not in _HARD_CONSTRAINT_TYPES:
        raise b.error(f"model_type {model_type.name} takes no hard constraint, so no loading "
                      f"can be excluded: clear {block.name} or {_HARD_REMEDY}", pairs[0][2], 0)
    named = params.get("factor_for_prior") or {}
    prior_frame = params.get("factors_beta_prior")
    out: dict[str, list[str]] = {}
    for asset, factor, i in pairs:
        if asset not in assets:
            raise b.error(f"{asset!r} is not an asset of {names[0]}", i, 0)
        if factor not in facs:
            raise b.error(f"{factor!r} is not a factor of {names[1]}", i, 1)
        chosen = named.get(asset, ())
        if factor in ([chosen] if isinstance(chosen, str) else chosen):
            at = _where(prior_factors, asset)
            raise b.error(f"({asset}, {factor}) is excluded but {factor!r} is also the factor "
                          f"of {asset!r}'s OLS prior{at}; an excluded loading cannot be its "
                          "prior", i, 1)
        if prior_frame is not None:
            value = prior_frame.loc[asset, factor]
            if np.isfinite(value) and value != 0:
                pi, pj = find_label(prior, asset, 0)[0], find_label(prior, factor, 1)[1]
                raise b.error(f"({asset}, {factor}) is excluded (pinned to 0) but its prior at "
                              f"{_cell_name(prior, pi, pj)} is {value:g}; clear one of them",
                              i, 1)
        out.setdefault(asset, []).append(factor)
    return {a: f[0] if len(f) == 1 else f for a, f in out.items()}


def _where(block: Block | None, asset: str) -> str:
    """`` at FL_PRIOR_FACTOR!A3``: the row naming ``asset`` in a ``FL_PRIOR_FACTOR`` block."""
    if block is None:
        return ""
    for a, _factors, i, _cols in parse_prior_factors(block):
        if a == asset:
            return f" at {_cell_name(block, i, 0)}"
    return ""


def _cell_name(block: Block, i: int, j: int) -> str:
    """``FL_PRIOR!C3`` (or ``prior (row 2, column 3)`` for a function argument)."""
    cell = block.trimmed().cell(i, j)
    return f"{block.name}!{cell}" if block.row is not None else f"{block.name} ({cell})"


def _exposure_budget(block: Block, params: dict, model_type, assets, facs,
                     names) -> pd.DataFrame | None:
    """``expert_prior_exposure_budget`` from ``FL_EXPOSURE_BUDGET`` (assets x factors, blank =
    no budget): labels checked against the panels, every filled cell a finite number >= 0.
    All cells blank (the empty template sheet) is no budget."""
    frame = parse_matrix(block)
    check_labels(block, frame.index, assets, axis=0, what="asset", source=names[0])
    check_labels(block, frame.columns, facs, axis=1, what="factor", source=names[1])
    values = frame.to_numpy(dtype=float)
    b = block.trimmed()

    def at(i, j):
        a, f = frame.index[i], frame.columns[j]
        return find_label(block, a, 0)[0], find_label(block, f, 1)[1]

    negative = np.argwhere(values < 0)
    if len(negative):
        i, j = negative[0]
        raise b.error(f"the exposure budget {values[i, j]:g} for ({frame.index[i]}, "
                      f"{frame.columns[j]}) is negative: a budget is a number >= 0, or blank",
                      *at(i, j))
    filled = np.argwhere(np.isfinite(values))
    if not len(filled):
        return None
    first = at(*filled[0])
    if model_type.name not in _HARD_CONSTRAINT_TYPES:
        raise b.error(f"model_type {model_type.name} takes no hard constraint, so no exposure "
                      f"budget: clear {block.name} or {_HARD_REMEDY}", *first)
    if not params.get("apply_ols_prior"):
        raise b.error(f"budgets the floors of the OLS prior, which is off: set "
                      f"apply_ols_prior = TRUE in the settings, or clear {block.name}", *first)
    return frame.reindex(index=assets, columns=facs)


def _check_against_data(inputs: FitInputs) -> None:
    """Settings that are valid alone but not for these returns, and too few dates."""
    r_name, f_name = inputs.names
    params, returns = inputs.params, inputs.returns
    n_dates = len(returns)
    usable, dropped = _usable_rows(n_dates, params)
    if usable < MIN_ROWS:
        after = f"after demeaning {usable} usable rows remain, " if dropped else ""
        raise WorkbookInputError(
            f"{r_name} and {f_name} have {n_dates} dates; {after}the fit needs at least "
            f"{MIN_ROWS}",
            name=r_name,
        )
    observed = returns.notna().to_numpy()
    if not observed.any():
        raise WorkbookInputError("every return is blank: there is nothing to fit", name=r_name)
    # the core's validity rule: a return counts on a date where some factor has a value
    if not (observed & inputs.factors.notna().to_numpy().any(axis=1)[:, None]).any():
        raise WorkbookInputError(
            f"no date with a return has a factor value in {f_name}: there is nothing to fit",
            name=f_name,
        )
    n_assets = returns.shape[1]
    k = params.get("n_clusters")
    if k is not None and k > n_assets:
        raise inputs.setting_error(
            "n_clusters",
            f"{k} is more than the {n_assets} assets of {r_name}; use at most {n_assets}",
        )
    unknown = [f for f in params.get("auto_sign_excluded_factors") or ()
               if f not in inputs.factors.columns]
    if unknown:
        raise inputs.setting_error(
            "auto_sign_excluded_factors",
            f"names {unknown[0]!r}, which is not a factor of {f_name}",
        )
    warmup = _warmup(params)
    most = int(returns.notna().sum().max())
    if warmup > most:
        raise inputs.setting_error(
            "warmup_period",
            f"{warmup} is more than the {most} returns of any asset in {r_name}: every "
            f"loading would be set to zero; use at most {most}, or none",
        )


def check_cv(inputs: FitInputs, *, n_splits: int | None = None) -> int:
    """The number of cross-validation folds, checked against the dates.

    Fold ``k`` of ``LassoModelCV`` trains on the first ``(k + 1) * (T // (n_splits + 1))``
    dates; the first training window must be a fit of its own (at least 5 usable rows, and no
    fewer rows than ``warmup_period``), or that fold would be blank.

    Parameters
    ----------
    inputs : FitInputs
    n_splits : int, optional
        A value given as a worksheet-function argument (checked, and named as ``n_splits``);
        by default ``cv_splits`` of the settings (default 5).

    Returns
    -------
    int
    """
    if inputs.params.get("expert_prior_budget_rule") == "cluster_mean":
        # the core refuses it under a lambda grid: its budgets hold for one reg_lambda
        raise inputs.setting_error(
            "expert_prior_budget_rule",
            "cluster_mean cannot be cross-validated: its budgets come from a first fit at one "
            "reg_lambda; to cross-validate use n_std (with expert_prior_bound_n_std or declared "
            "exposure budgets), or fit without cross-validation")
    splits = inputs.cv.get("cv_splits", 5) if n_splits is None else n_splits
    n_dates = len(inputs.returns)
    usable, dropped = _usable_rows(n_dates, inputs.params)
    warmup = _warmup(inputs.params)
    need = max(MIN_ROWS + n_dates - usable, warmup)
    first = n_dates // (splits + 1)
    if first >= need:
        return splits
    if warmup == need:
        reason = f"warmup_period {warmup}"
    else:
        reason = f"{MIN_ROWS} usable rows" + (" after demeaning" if dropped else "")
    most = n_dates // need - 1
    remedy = f"use at most {most}" if most >= 2 else "too few dates to cross-validate"
    if warmup == need:
        remedy += " (or lower warmup_period)"
    message = (
        f"{splits} is too many for the {n_dates} dates: the first training window would have "
        f"{first} row{'' if first == 1 else 's'} and needs {need} ({reason}); {remedy}"
    )
    if n_splits is not None:
        raise WorkbookInputError(message, name="n_splits")
    raise inputs.setting_error("cv_splits", message)
