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
