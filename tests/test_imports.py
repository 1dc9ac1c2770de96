"""The default fast path must not import CVXPY or scipy.cluster (memory and start-up time)."""

import json
import subprocess
import sys

import pytest

_SCRIPT = """
import json, sys
import xl_factorlasso as xf
panel = xf.make_factor_panel(200, 4, 12, seed=0)
model = xf.LassoModel(model_type=xf.LassoModelType.{model_type}, reg_lambda=1e-4,
                      warmup_period=None).fit(panel.x, panel.y)
loaded = [m for m in ("cvxpy", "scipy.cluster", "sklearn") if m in sys.modules]
print(json.dumps({{"solver": model.solver_, "loaded": loaded}}))
"""


def _run(model_type: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(model_type=model_type)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "model_type, expected",
    [
        ("LASSO", []),
        ("FACTOR_CLUSTER_GROUP_LASSO", []),
        ("HIERARCHICAL_CLUSTER_GROUP_LASSO", []),
    ],
)
def test_fast_fit_loads_no_cvxpy(model_type, expected):
    result = _run(model_type)
    assert result["solver"] == "fast"
    assert result["loaded"] == expected


def test_lazy_names_resolve():
    import xl_factorlasso
    import xl_factorlasso.core as core
    from xl_factorlasso.core import linear_model
    from xl_factorlasso.core.optimization import MaximumDiversification

    assert xl_factorlasso.MaximumDiversification is MaximumDiversification
    assert core.MaximumDiversification is MaximumDiversification
    assert "MaximumDiversification" in dir(xl_factorlasso)
    assert linear_model.LassoProblem.__name__ == "LassoProblem"
    assert set(xl_factorlasso.__all__) <= set(dir(xl_factorlasso))
    with pytest.raises(AttributeError):
        xl_factorlasso.NoSuchName  # noqa: B018
