"""Input checks shared by the optimisers. Every error names the parameter and the asset/label."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "asset_vector",
    "check_returns",
    "constraint_names",
    "positive_float",
    "real_float",
]


def real_float(value: Any, name: str, *, allow_none: bool = False) -> float | None:
    """A finite real number, or None when allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not np.isscalar(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number, got {value!r}") from err
    if not np.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def positive_float(value: Any, name: str, *, allow_none: bool = True, strict: bool = True):
    """A finite number > 0 (or >= 0 when ``strict=False``), or None when allowed."""
    out = real_float(value, name, allow_none=allow_none)
    if out is not None and (out <= 0 if strict else out < 0):
        bound = "strictly positive" if strict else ">= 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return out


def check_returns(X: Any, name: str = "X") -> tuple[np.ndarray, pd.Index | None, pd.Index]:
    """``X`` as a finite float matrix, its column labels (None if unlabelled) and row index."""
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        assets = X.columns if not isinstance(X.columns, pd.RangeIndex) else None
        index = X.index
        values = X.to_numpy(dtype=float)
    else:
        try:
            values = np.asarray(X, dtype=float)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be a numeric matrix: {err}") from err
        assets = None
        index = pd.RangeIndex(values.shape[0]) if values.ndim >= 1 else pd.RangeIndex(0)
    if values.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_observations, n_assets), got shape {values.shape}")
    if values.shape[0] < 2 or values.shape[1] < 1:
        raise ValueError(f"{name} needs at least 2 observations and 1 asset, got {values.shape}")
    if assets is not None and assets.has_duplicates:
        raise ValueError(f"{name} has duplicate columns: {list(assets[assets.duplicated()][:10])}")
    bad = ~np.isfinite(values)
    if bad.any():
        col = int(np.nonzero(bad.any(axis=0))[0][0])
        label = repr(assets[col]) if assets is not None else f"#{col}"
        raise ValueError(f"{name} contains NaN or infinite values (first in column {label})")
    return values, assets, index


def asset_vector(
    value: Any,
    name: str,
    n: int,
    assets: pd.Index | None,
    fill: float,
    *,
    allow_none: bool = False,
    allow_inf: bool = False,
) -> np.ndarray | None:
    """A per-asset parameter as a float vector of shape (n,).

    Accepts a scalar, a dict ``{asset: value}`` (missing assets get ``fill``; an unknown asset is
    an error), a labelled Series (read like a dict) or an array of shape (n,).
    """
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{name} must not be None")
    labelled = isinstance(value, pd.Series) and not isinstance(value.index, pd.RangeIndex)
    if (labelled and assets is not None and value.index.equals(assets)
            and pd.api.types.is_numeric_dtype(value.dtype)
            and not pd.api.types.is_bool_dtype(value.dtype)):
        # the assets in their order (previous holdings, a backtest's vectors): as an array
        value = value.to_numpy(dtype=float, na_value=np.nan)  # (pd.NA: the NaN message)
    elif labelled and assets is not None:
        value = value.to_dict()
    if isinstance(value, Mapping):
        if assets is None:
            raise ValueError(
                f"{name} is a dict, so X (or the covariance) must be a DataFrame with asset names"
            )
        unknown = [k for k in value if k not in assets]
        if unknown:
            raise ValueError(f"{name} refers to unknown assets {unknown[:10]}")
        out = np.full(n, float(fill))
        positions = assets.get_indexer(list(value.keys()))
        out[positions] = [_number(v, name, k) for k, v in value.items()]
    elif np.isscalar(value):
        if isinstance(value, bool) or isinstance(value, str):
            raise ValueError(f"{name} must be a number, a dict or an array, got {value!r}")
        out = np.full(n, float(value))
    else:
        try:
            out = np.asarray(value, dtype=float).copy()
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be numeric: {err}") from err
        if out.shape != (n,):
            raise ValueError(f"{name} must have shape (n_assets,) = ({n},), got {out.shape}")
    if np.any(np.isnan(out)):
        i = int(np.argmax(np.isnan(out)))
        raise ValueError(f"{name} is NaN for asset {_label(assets, i)}")
    if not allow_inf and not np.all(np.isfinite(out)):
        i = int(np.argmax(~np.isfinite(out)))
        raise ValueError(f"{name} is infinite for asset {_label(assets, i)}")
    return out


def _number(value: Any, name: str, key: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as err:  # (the message is formed here, not once per asset)
        raise ValueError(f"{name}[{key!r}] must be a number, got {value!r}") from err


def _label(assets: pd.Index | None, i: int) -> str:
    return repr(assets[i]) if assets is not None else f"#{i}"


def _is_blank(label: Any) -> bool:
    if label is None:
        return True
    if isinstance(label, float) and np.isnan(label):
        return True
    return isinstance(label, str) and not label.strip()


class _Names(Mapping):
    """Labels and their vectors, an asset name's unit vector made when it is read (one for
    each asset would be an n x n array, 32 MB at n = 2000, for the few names a set of
    constraints uses)."""

    def __init__(self, n: int, entries: dict[str, np.ndarray | int]):
        self._n, self._entries = n, entries

    def __getitem__(self, label: str) -> np.ndarray:
        value = self._entries[label]
        if isinstance(value, np.ndarray):
            return value
        unit = np.zeros(self._n)
        unit[value] = 1.0
        return unit

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def constraint_names(
    n: int,
    assets: pd.Index | None,
    groups: Any,
    loadings: pd.DataFrame | None,
) -> Mapping[str, np.ndarray]:
    """Every label usable in ``linear_constraints`` and the vector it stands for.

    * asset names (when known and strings): unit vectors;
    * ``groups`` labels: 0/1 membership vectors. ``groups`` is a dict ``{asset: [label, ...]}``
      or an array of shape (n_levels, n_assets) (a 1-D array is one level). A label may appear in
      several levels; its members are the union. Blank labels are ignored;
    * factor names of a factor-model covariance: the loadings column (the portfolio's exposure);
    * factor families (``loadings.attrs["factor_families"]``, one label or None per column, set
      from ``FactorCovariance.factor_families``): the sum of the family's loadings columns.

    A label that means two different things (an asset and a group, a group and a factor, a
    factor and a family) is an error.
    """
    names: dict[str, np.ndarray | int] = {}
    origin: dict[str, str] = {}

    def add(label: str, vector: np.ndarray | int, kind: str):
        if label in names and origin[label] != kind:
            raise ValueError(f"{label!r} is both {origin[label]} and {kind}; labels must be unique")
        names[label] = vector
        origin[label] = kind

    if assets is not None:  # (unique: checked with X; each unit vector made when read)
        names.update((asset, i) for i, asset in enumerate(assets.tolist())
                     if isinstance(asset, str))
        origin.update(dict.fromkeys(names, "an asset name"))

    if groups is not None:
        memberships: dict[str, np.ndarray] = {}
        if isinstance(groups, Mapping):
            if assets is None:
                raise ValueError("groups is a dict, so X (or the covariance) must be a DataFrame "
                                 "with asset names")
            unknown = [k for k in groups if k not in assets]
            if unknown:
                raise ValueError(f"groups refers to unknown assets {unknown[:10]}")
            for asset, labels in groups.items():
                i = assets.get_loc(asset)
                labels = [labels] if isinstance(labels, str) or np.isscalar(labels) else labels
                for label in labels:
                    if not _is_blank(label):
                        memberships.setdefault(str(label), np.zeros(n))[i] = 1.0
        else:
            table = np.asarray(groups, dtype=object)
            if table.ndim == 1:
                table = table[None, :]
            if table.ndim != 2 or table.shape[1] != n:
                raise ValueError(f"groups must be a dict or an array of shape (n_levels, {n}), "
                                 f"got shape {table.shape}")
            for level in table:
                # one pass per level: each distinct label's members at once
                keep = np.flatnonzero([not _is_blank(label) for label in level])
                codes, uniques = pd.factorize(np.array([str(v) for v in level[keep]],
                                                       dtype=object))
                for code, label in enumerate(uniques):
                    members = keep[codes == code]
                    memberships.setdefault(label, np.zeros(n))[members] = 1.0
        for label, vector in memberships.items():
            add(label, vector, "a group label")

    if loadings is not None:
        columns = loadings.to_numpy(dtype=float)  # (one array, not an .iloc per column)
        for j, factor in enumerate(loadings.columns):
            add(str(factor), columns[:, j].copy(), "a factor name")
        families: dict[str, np.ndarray] = {}
        for j, family in enumerate(loadings.attrs.get("factor_families") or ()):
            if family is not None:
                column = columns[:, j]
                families[family] = families.get(family, np.zeros(n)) + column
        for family, vector in families.items():
            add(family, vector, "a factor family")
    return _Names(n, names)
