"""Smoke tests: every script in ``examples/`` runs and prints what it promises.

Each example is run as a subprocess with the current interpreter; the checks parse the numbers
it prints (recovery of the known synthetic truth, volatility check, CV results) and bound them.
The last test runs `benchmarks/bench_fit.py` on its smallest cell without the anchor.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NUM = r"([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"


def run_example(name: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=EXAMPLES.parent,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def recovery_lines(out: str) -> dict[str, dict[str, float]]:
    """``recovery <name> rel_error=.. tpr=.. fpr=.. sign_agreement=..`` -> {name: metrics}."""
    rows = {}
    pattern = rf"^recovery (.+?)\s+rel_error={NUM} tpr={NUM} fpr={NUM} sign_agreement={NUM}"
    for m in re.finditer(pattern, out, flags=re.M):
        rows[m.group(1).strip()] = dict(
            zip(("rel_error", "tpr", "fpr", "sign"), map(float, m.groups()[1:]), strict=True)
        )
    return rows


@pytest.fixture(scope="module")
def finance_out() -> str:
    return run_example("finance_factor_model.py")


def test_finance_example(finance_out):
    out = finance_out
    assert "SYNTHETIC" in out
    rec = recovery_lines(out)
    assert set(rec) == {"LASSO (no structure)", "HCGL+signs+prior"}
    hcgl, lasso = rec["HCGL+signs+prior"], rec["LASSO (no structure)"]
    # Signs + prior + clusters must beat the unstructured fit on the known truth.
    assert hcgl["rel_error"] < 0.35 and hcgl["rel_error"] < lasso["rel_error"]
    assert hcgl["tpr"] >= 0.9 and hcgl["sign"] == 1.0
    # The factor-model vols are close to the sample vols of the same data.
    vol_err = float(re.search(rf"median \|model/sample - 1\| = {NUM}", out).group(1))
    assert vol_err < 0.15
    # Volatility table: every asset row, systematic share in (0, 1].
    rows = re.findall(rf"^(\w+)\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}$", out, flags=re.M)
    assert len(rows) == 24
    for _, total, sysv, resid, share, _ in rows:
        total, sysv, resid, share = map(float, (total, sysv, resid, share))
        assert total == pytest.approx((sysv**2 + resid**2) ** 0.5, abs=2e-3)
        assert 0.0 < share <= 1.0
    corr = dict(re.findall(rf"(\w+-\w+) {NUM}", out.split("Model correlations:")[1]))
    assert float(corr["SPX-SX5E"]) > 0.5 and float(corr["UST10-BUND10"]) > 0.5


def test_genomics_example():
    out = run_example("genomics_factor_model.py")
    assert "SYNTHETIC" in out
    rec = recovery_lines(out)
    assert set(rec) == {"LASSO (no prior)", "LASSO + signs", "FCGL + signs"}
    for r in rec.values():
        assert r["tpr"] >= 0.9
    # Biological sign priors remove false trans effects and never get a sign wrong.
    assert rec["LASSO + signs"]["fpr"] < rec["LASSO (no prior)"]["fpr"]
    assert rec["FCGL + signs"]["fpr"] < rec["LASSO (no prior)"]["fpr"]
    assert rec["LASSO + signs"]["sign"] == 1.0 and rec["FCGL + signs"]["sign"] == 1.0
    assert rec["FCGL + signs"]["rel_error"] < 0.25
    found = [int(p) for p in re.findall(r"found on\s+(\d+)%", out)]
    assert len(found) == 8 and min(found) >= 75
    purity = float(re.search(rf"purity {NUM}", out).group(1))
    assert purity >= 0.6


def test_cv_example():
    out = run_example("cv_lambda_selection.py")
    lam_max = float(re.search(rf"lambda_max on the training sample = {NUM}", out).group(1))
    res = {
        m.group(1): dict(best=float(m.group(2)), cv=float(m.group(3)), test=float(m.group(4)))
        for m in re.finditer(
            rf"^result (.+?): best_lambda={NUM} best_cv_r2={NUM} test_r2={NUM}", out, flags=re.M
        )
    }
    assert set(res) == {"default grid", "lambdas='auto'"}
    default, auto = res["default grid"], res["lambdas='auto'"]
    # The absolute default grid tops out at 0.1, far below lambda_max on unit-scale data.
    assert default["best"] == pytest.approx(0.1) and "[at grid edge]" in out
    assert 1e-3 * lam_max * 0.99 <= auto["best"] < lam_max
    assert auto["cv"] >= default["cv"] - 1e-3
    for r in res.values():
        assert 0.3 < r["test"] < 0.6  # population R² is 0.5
    # 20 grid rows printed per CV run (value + score).
    assert len(re.findall(rf"^\s+{NUM}\s+{NUM}(?:  <- best)?$", out, flags=re.M)) == 40


def test_bench_fit_smoke(tmp_path):
    """The benchmark script runs (ours only, smallest size, one config) and writes its JSON."""

    out_json = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES.parent / "benchmarks" / "bench_fit.py"),
            "--sizes",
            "small",
            "--configs",
            "lasso_sign_prior",
            "--skip-anchor",
            "--repeats",
            "1",
            "--out",
            str(out_json),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(
        r"^\| LASSO\+sign\+prior \| 500,10,50 \| \d+\.\d{3} \| — \|", proc.stdout, re.M
    )
    rows = json.loads(out_json.read_text())["rows"]
    assert len(rows) == 1
    cell = rows[0]["cells"]["ours"]
    assert cell["error"] is None and len(cell["fit_times"]) == 1
    assert cell["peak_mb"] >= cell["baseline_mb"] > 0
    # reg_lambda = 0.05 * max|(2/T) X'Y| on the demeaned seed-0 panel.
    from xl_factorlasso.core.datasets import make_factor_panel

    p = make_factor_panel(500, 10, 50, seed=0)
    xc, yc = p.x - p.x.mean(), p.y - p.y.mean()
    lam_max = np.abs(2.0 / 500 * xc.T.to_numpy() @ yc.to_numpy()).max()
    assert cell["reg_lambda"] == pytest.approx(0.05 * lam_max, rel=1e-12)


def test_bench_engine_smoke(tmp_path):
    """bench_engine.py runs the fast engine and scikit-learn on one anchored config through the
    shared timing protocol, and scores both with one objective."""
    out_json = tmp_path / "engine.json"
    proc = subprocess.run(
        [
            sys.executable, str(EXAMPLES.parent / "benchmarks" / "bench_engine.py"),
            "--sizes", "small", "--configs", "lasso_plain", "--libs", "fast,sklearn",
            "--no-cv", "--repeats", "1", "--out", str(out_json),
        ],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\| LASSO \(plain\) \| Lasso\(alpha=lambda/2\) \| 500,10,50 \|",
                     proc.stdout, re.M)
    row = json.loads(out_json.read_text())["fits"][0]
    fast, sk = row["cells"]["fast"], row["cells"]["sklearn"]
    assert fast["error"] is None and sk["error"] is None
    assert fast["solver"] == "fast" and fast["gap"] <= 1e-8
    assert sk["solver"].startswith("Lasso")
    assert fast["reg_lambda"] == sk["reg_lambda"]
    for cell in (fast, sk):
        assert len(cell["fit_times"]) == 1 and cell["peak_mb"] >= cell["baseline_mb"] > 0
    # sklearn stops at tol=1e-4: a slightly higher objective, the same coefficients to ~1e-4
    assert -1e-6 < row["obj_sklearn"] <= 1e-12 and row["max_db_sklearn"] < 1e-3
