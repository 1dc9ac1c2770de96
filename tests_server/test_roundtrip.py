"""The whole Office.js path without Excel: .xlsx -> request -> server -> actions -> .xlsx.

``tests/fake_office_client.py`` stands in for the add-in's JavaScript: it builds the body that
``xlwings.runPython`` posts from the workbook and replays the returned actions on the file with
openpyxl. The loadings that land in FL_COEF must be those of a direct ``LassoModel`` fit.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd

from tests.fake_office_client import apply_actions, book_payload
from xl_factorlasso import LassoModel, LassoModelType
from xl_factorlasso.core.datasets import load_demo_panel
from xl_factorlasso.workbook import XlsxFileIO


def _table(path, name: str) -> pd.DataFrame:
    io = XlsxFileIO(str(path))
    rows = io.read(io.names()[name])
    header, body = rows[0], [r for r in rows[1:] if r[0] is not None]
    cols = [c for c in header[1:] if c is not None]
    return pd.DataFrame([r[1:1 + len(cols)] for r in body], index=[r[0] for r in body],
                        columns=cols, dtype=float)


def test_refit_round_trip_equals_a_direct_fit(client, demo_xlsx, tmp_path, xlwings_version):
    path = tmp_path / "roundtrip.xlsx"
    shutil.copy(demo_xlsx, path)
    assert _table(path, "FL_COEF").empty or _table(path, "FL_COEF").isna().all().all()

    r = client.post("/xlwings/custom-scripts-call/refit", json=book_payload(path, xlwings_version))
    assert r.status_code == 200, r.text
    alerts = apply_actions(path, r.json()["actions"])
    assert len(alerts) == 1 and alerts[0].startswith("refit: HIERARCHICAL_CLUSTER_GROUP_LASSO")

    # the same inputs, straight into the core (the settings build_demo_workbook writes)
    demo = load_demo_panel()
    model = LassoModel(
        model_type=LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO,
        reg_lambda=1e-5,
        span=52,
        n_clusters=4,
        l1_weight=0.1,
        factors_beta_loading_signs=demo.signs,
        factors_beta_prior=demo.prior,
    ).fit(demo.x, demo.y)

    got = _table(path, "FL_COEF")
    expected = model.coef_
    assert list(got.index) == list(expected.index)
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)
    assert (got.to_numpy() != 0).sum() == (expected.to_numpy() != 0).sum()  # same sparsity


def test_template_round_trip_equals_a_direct_fit(client, tmp_path, xlwings_version):
    """The shipped .xlsx template through the server equals LassoModel on its own inputs."""
    from pathlib import Path

    from xl_factorlasso.workbook._jobs import FIT_INPUTS, read_blocks, workbook_fit_inputs

    template = (Path(__file__).parent.parent / "xl_factorlasso" / "templates"
                / "factorlasso_template.xlsx")
    path = tmp_path / "template.xlsx"
    shutil.copy(template, path)
    inputs = workbook_fit_inputs(read_blocks(XlsxFileIO(str(path)), FIT_INPUTS, ()))
    model = LassoModel(**inputs.params).fit(inputs.factors, inputs.returns)

    r = client.post("/xlwings/custom-scripts-call/refit", json=book_payload(path, xlwings_version))
    assert r.status_code == 200, r.text
    alerts = apply_actions(path, r.json()["actions"])
    assert len(alerts) == 1 and alerts[0].startswith("refit:")
    got = _table(path, "FL_COEF")
    assert list(got.index) == list(model.coef_.index)
    np.testing.assert_allclose(got.to_numpy(), model.coef_.to_numpy(), rtol=0, atol=1e-9)
