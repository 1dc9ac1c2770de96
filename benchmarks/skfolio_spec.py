"""Play skfolio's own MaximumDiversification tests against ``xl_factorlasso.skfolio``.

Purpose
-------
skfolio's test suite is the specification of a skfolio-compatible ``MaximumDiversification``.
This developer script (not a unit test) runs two of its modules against this project:

* ``test_maximum_diversification.py``, skfolio's tests of the estimator itself, with the name
  ``MaximumDiversification`` bound to the implementation under test;
* ``test_mean_risk.py``, the MeanRisk constraint grid, with ``MeanRisk`` replaced by a factory
  that builds that ``MaximumDiversification`` from the MeanRisk keyword arguments that apply.
  ``objective_function``, ``risk_measure``, ``risk_aversion``, the risk limits
  (``max_variance``, ``max_cvar``, ...) and the parameters of other risk measures
  (``cvar_beta``, ``min_acceptable_return``, ...) are dropped: MaxDiv fixes its objective and
  its risk (the standard deviation). A MeanRisk call that means nothing for MaxDiv skips its
  test with the reason: a risk measure other than the standard deviation or the variance
  (MeanRisk's default, the same covariance), an efficient frontier, an uncertainty set,
  ``target_weights``, ``overwrite_expected_return``. Tests of skfolio internals are
  deselected by name (``DESELECTED`` below, with reasons).

It runs pytest twice, once with skfolio's own class (the baseline: what passes on skfolio
with the objective swapped) and once with ours, then prints one row per test and the summary
"N tests; passed on skfolio: A; of those passed here: B; failures: ...". Tests that need the
network (the implied-volatility download) or the SCIP solver are reported as such. Failures
of tests that set ``l2_coef`` are listed apart: this project's l2 term is a documented,
deliberate difference (skfolio's depends on the level of the mean returns; see
``docs/maxdiv.md``). The exit status is 1 when another test that passes on skfolio fails here.

skfolio's tests are never stored in this repository: the script extracts them with
``git show`` from a local skfolio clone into a temporary directory, writes its own small
conftest plug-in next to them and deletes the directory at the end (``--keep`` keeps it).

Usage
-----
::

    python benchmarks/skfolio_spec.py                  # ours against skfolio
    python benchmarks/skfolio_spec.py --impl skfolio   # skfolio on both sides (checks the runner)
    python benchmarks/skfolio_spec.py -k "turnover or groups" --failures-only

Options: ``--repo`` (default ``/work/.mirror/skfolio+skfolio/repo``), ``--ref`` (default
``feature/characteristics-factor-model``, the branch closest to skfolio 1.12), ``--impl``
(``ours``: ``xl_factorlasso.skfolio.MaximumDiversification``; ``skfolio``: skfolio's class on
both sides), ``-k`` (a pytest selection), ``--keep``, ``--failures-only``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

# this checkout's package, not an editable install of another checkout (a git worktree)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REPO = "/work/.mirror/skfolio+skfolio/repo"
DEFAULT_REF = "feature/characteristics-factor-model"
CONVEX = "tests/test_optimization/test_convex"
SKFOLIO_FILES = (
    "tests/conftest.py",
    f"{CONVEX}/conftest.py",
    f"{CONVEX}/test_maximum_diversification.py",
    f"{CONVEX}/test_mean_risk.py",
)
TEST_MODULES = (f"{CONVEX}/test_maximum_diversification.py", f"{CONVEX}/test_mean_risk.py")

# Tests of skfolio internals rather than of the estimator's behaviour.
DESELECTED = {
    "test_cvx_cache": "calls MeanRisk's private CVXPY builders (_cvx_drawdown, _cvx_returns)",
    "test_optimal_homogenization_factor": "tests a private skfolio function, not the estimator",
    "test_mean_risk_get_params": "checks MeanRisk's own parameter list",
    "test_mean_risk_set_params": "checks MeanRisk's own parameter list",
}

# The conftest plug-in written at the root of the temporary directory (skfolio's own
# tests/conftest.py stays below it, unchanged).
PLUGIN = textwrap.dedent('''
    """Binds MaximumDiversification/MeanRisk to the implementation under test (skfolio_spec.py)."""

    import inspect
    import json
    import os

    import pytest
    from skfolio import RiskMeasure
    from skfolio.optimization import MaximumDiversification as SkfolioMaxDiv

    IMPL = os.environ["XLFL_SPEC_IMPL"]
    RESULTS = os.environ["XLFL_SPEC_RESULTS"]
    DESELECTED = json.loads(os.environ["XLFL_SPEC_DESELECTED"])

    if IMPL == "skfolio":
        MAXDIV = SkfolioMaxDiv
    else:
        import xl_factorlasso.skfolio as _ours

        MAXDIV = _ours.MaximumDiversification

    # The same keyword arguments reach both implementations: those skfolio's MaxDiv accepts.
    APPLIES = set(inspect.signature(SkfolioMaxDiv.__init__).parameters) - {"self"}
    DROPPED_ALWAYS = {"objective_function", "risk_measure", "risk_aversion",
                      "min_acceptable_return"}
    MEANINGLESS = {
        "efficient_frontier_size": "an efficient frontier (MaxDiv fits one portfolio)",
        "mu_uncertainty_set_estimator": "a mu uncertainty set",
        "covariance_uncertainty_set_estimator": "a covariance uncertainty set",
        "target_weights": "target_weights (not a MaxDiv parameter)",
        "overwrite_expected_return": "overwrite_expected_return (MaxDiv sets its own)",
    }
    COVARIANCE_RISKS = (RiskMeasure.STANDARD_DEVIATION, RiskMeasure.VARIANCE)
    _state = {"test": None, "l2": set(), "results": {}}


    def _dropped(name):
        return (name in DROPPED_ALWAYS or name.endswith("_beta")
                or (name.startswith("max_") and name not in APPLIES))


    class _MeanRiskMeta(type):
        def __instancecheck__(cls, obj):
            return isinstance(obj, MAXDIV)


    class MeanRiskAsMaxDiv(metaclass=_MeanRiskMeta):
        """``MeanRisk(**kwargs)`` -> ``MaximumDiversification(**applicable kwargs)``."""

        def __new__(cls, *args, **kwargs):
            if args:
                pytest.skip("MeanRisk called with positional arguments")
            risk = kwargs.get("risk_measure")
            if risk is not None and risk not in COVARIANCE_RISKS:
                pytest.skip(f"risk measure {risk.name}: MaxDiv's risk is the standard deviation")
            for name, what in MEANINGLESS.items():
                if kwargs.get(name) is not None:
                    pytest.skip(f"MeanRisk with {what}")
            unknown = [k for k in kwargs if k not in APPLIES and not _dropped(k)
                       and k not in MEANINGLESS]
            if unknown:
                pytest.skip(f"MeanRisk argument {unknown[0]!r} has no MaxDiv counterpart")
            if kwargs.get("l2_coef"):
                _state["l2"].add(_state["test"])
            return MAXDIV(**{k: v for k, v in kwargs.items() if k in APPLIES})


    def pytest_collection_modifyitems(session, config, items):
        for item in items:
            module = item.module
            if module.__name__.endswith("test_mean_risk"):
                module.MeanRisk = MeanRiskAsMaxDiv
            elif module.__name__.endswith("test_maximum_diversification"):
                module.MaximumDiversification = MAXDIV
            reason = DESELECTED.get(item.originalname)
            if reason and module.__name__.endswith("test_mean_risk"):
                item.add_marker(pytest.mark.skip(reason=f"deselected: {reason}"))


    def pytest_runtest_setup(item):
        _state["test"] = item.nodeid


    def _reason(report):
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(report.longrepr)
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        return lines[0][:300] if lines else ""


    def pytest_runtest_logreport(report):
        entry = _state["results"].setdefault(report.nodeid, {"outcome": "passed", "reason": ""})
        if entry["outcome"] != "passed":
            return  # keep the first problem (e.g. a setup error over its teardown)
        if hasattr(report, "wasxfail"):
            entry.update(outcome="xfailed" if report.skipped else "xpassed",
                         reason=str(report.wasxfail))
        elif report.skipped:
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            entry.update(outcome="skipped", reason=reason.removeprefix("Skipped: "))
        elif report.failed:
            entry.update(outcome="failed" if report.when == "call" else "error",
                         reason=_reason(report))


    def pytest_sessionfinish(session):
        results = _state["results"]
        for nodeid in _state["l2"]:
            if nodeid in results:
                results[nodeid]["l2_coef"] = True
        with open(RESULTS, "w", encoding="utf-8") as fh:
            json.dump(results, fh)
''')

PYTEST_INI = "[pytest]\naddopts = --import-mode=importlib\n"


def extract(repo: str, ref: str, dest: Path) -> None:
    """Write skfolio's test files at ``ref`` under ``dest`` (plus empty package markers)."""
    for path in SKFOLIO_FILES:
        done = subprocess.run(["git", "-C", repo, "show", f"{ref}:{path}"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"cannot read {path} at {ref} in {repo}: {done.stderr.strip()}")
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(done.stdout, encoding="utf-8")
    for package in ("tests", "tests/test_optimization", CONVEX):
        (dest / package / "__init__.py").touch()
    (dest / "conftest.py").write_text(PLUGIN, encoding="utf-8")
    (dest / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")


def run_pytest(workdir: Path, impl: str, side: str, selection: str | None) -> dict:
    """Run the extracted modules with ``impl``; ``{nodeid: {"outcome", "reason"}}``."""
    results = workdir / f"results-{side}.json"
    env = dict(
        os.environ,
        XLFL_SPEC_IMPL=impl,
        XLFL_SPEC_RESULTS=str(results),
        XLFL_SPEC_DESELECTED=json.dumps(DESELECTED),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        MPLBACKEND="Agg",
    )
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--no-header",
           "-c", str(workdir / "pytest.ini"), "--rootdir", str(workdir), *TEST_MODULES]
    if selection:
        cmd += ["-k", selection]
    print(f"running skfolio's tests with the {impl} MaximumDiversification ...", flush=True)
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    if not results.exists():
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"pytest ({impl}) did not run (exit {done.returncode})")
    return json.loads(results.read_text(encoding="utf-8"))


def status(entry: dict | None) -> str:
    """A short result: passed, failed, error, skipped, needs network, needs SCIP..."""
    if entry is None:
        return "-"
    reason = entry["reason"]
    if entry["outcome"] in ("failed", "error"):
        if "urlopen error" in reason or "URLError" in reason or "HTTP Error" in reason:
            return "needs network"
        if "SCIP" in reason:
            return "needs SCIP"
    if entry["outcome"] == "skipped" and reason.startswith("deselected: "):
        return "deselected"
    return entry["outcome"]


def report(base: dict, ours: dict, failures_only: bool = False, show_all: bool = False) -> int:
    """Print the table and the summary; the exit status (1 on an unexpected failure)."""
    ids = sorted(set(base) | set(ours))
    not_run = ("skipped", "deselected")
    ran = [i for i in ids if status(base.get(i)) not in not_run]
    rows = []
    for nodeid in ids if show_all else ran:
        a, b = status(base.get(nodeid)), status(ours.get(nodeid))
        if failures_only and not (a == "passed" and b != "passed"):
            continue
        module, _, name = nodeid.partition("::")
        rows.append((f"{module.rsplit('/', 1)[-1]}::{name}", a, b))
    width = max([len(r[0]) for r in rows] + [4])
    print(f"{'test':<{width}}  {'skfolio':<13}  ours")
    for name, a, b in rows:
        print(f"{name:<{width}}  {a:<13}  {b}")

    passed_base = [i for i in ran if status(base.get(i)) == "passed"]
    passed_both = [i for i in passed_base if status(ours.get(i)) == "passed"]
    failed = [i for i in passed_base if status(ours.get(i)) != "passed"]
    deliberate = [i for i in failed if (ours.get(i) or {}).get("l2_coef")]
    unexpected = [i for i in failed if i not in deliberate]
    counts: dict[str, int] = {}
    for i in ran:
        counts[status(base.get(i))] = counts.get(status(base.get(i)), 0) + 1
    print()
    print(f"{len(ran)} tests; passed on skfolio: {len(passed_base)}; of those passed here: "
          f"{len(passed_both)}; failures: {len(unexpected)}"
          + (f" (+{len(deliberate)} deliberate l2_coef differences)" if deliberate else ""))
    note = (" (a failure there: the test checks MeanRisk's own numbers or behaviour)"
            if counts.get("failed") or counts.get("error") else "")
    print("on skfolio: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + note)
    reasons: dict[str, int] = {}
    for i in ids:
        entry = base.get(i)
        if entry and status(entry) in not_run:
            key = entry["reason"]
            if key.startswith("risk measure "):
                key = "risk measure other than the standard deviation or the variance"
            reasons[key] = reasons.get(key, 0) + 1
    print(f"not run: {len(ids) - len(ran)} parametrised cases")
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"  {n:5d}  {reason}")
    for title, group in (("failures", unexpected), ("deliberate (l2_coef)", deliberate)):
        if group:
            print(f"{title}:")
            for i in group:
                entry = ours.get(i) or {"outcome": "missing", "reason": "not run"}
                print(f"  {i.rsplit('/', 1)[-1]}: {status(entry)}: {entry['reason']}")
    return 1 if unexpected else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=DEFAULT_REPO, help="a git clone of skfolio")
    parser.add_argument("--ref", default=DEFAULT_REF, help="the skfolio revision to read")
    parser.add_argument("--impl", choices=("ours", "skfolio"), default="ours",
                        help="the implementation compared with skfolio's")
    parser.add_argument("-k", dest="selection", help="pytest -k selection")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--failures-only", action="store_true",
                        help="print only the rows that pass on skfolio and not here")
    parser.add_argument("--all", dest="show_all", action="store_true",
                        help="also print the rows of the cases that did not run")
    args = parser.parse_args(argv)

    if args.impl == "ours":
        sys.path.insert(0, str(ROOT))
        try:
            import xl_factorlasso.skfolio as ours
        except ImportError as err:
            raise SystemExit(f"--impl ours: cannot import xl_factorlasso.skfolio: {err}") from None
        if not hasattr(ours, "MaximumDiversification"):
            raise SystemExit("--impl ours: xl_factorlasso.skfolio has no MaximumDiversification "
                             "on this branch yet; run with --impl skfolio to check the runner")

    import skfolio

    commit = subprocess.run(["git", "-C", args.repo, "rev-parse", "--short", args.ref],
                            capture_output=True, text=True).stdout.strip()
    print(f"skfolio {skfolio.__version__} installed; tests from {args.ref} ({commit or '?'})")
    workdir = Path(tempfile.mkdtemp(prefix="skfolio-spec-"))
    try:
        extract(args.repo, args.ref, workdir)
        base = run_pytest(workdir, "skfolio", "baseline", args.selection)
        ours_results = run_pytest(workdir, args.impl, "compared", args.selection)
        return report(base, ours_results, args.failures_only, args.show_all)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
