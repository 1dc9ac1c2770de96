"""The ``xl-factorlasso`` command line (a thin host over the workbook layer and the core)."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["main"]

DEMO_FILE = "factorlasso_demo.xlsx"
#: FL_ROLLING_SETTINGS of ``xl-factorlasso demo``: the walk-forward refits at every month end
#: from two years of history on and charges 10 bp per unit traded.
DEMO_ROLLING = {"rebalance": "ME", "window": "expanding", "min_history": 104,
                "transaction_cost_bps": 10, "history_factor": "Equity"}
_CLASS_TAGS = {"Equities": "EQ", "Govies": "GOV", "Credit": "CRD", "Commodities": "CMDTY"}


def _table(frame: pd.DataFrame | pd.Series, fmt: str = "{:.3f}") -> str:
    """A plain-text table: '.' for zeros so that sparsity is visible at a glance."""
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()

    def cell(v):
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return "n/a"
            return "." if v == 0.0 or abs(v) < 5e-4 else fmt.format(v)
        return str(v)

    return frame.map(cell).to_string()


def build_demo_workbook(path: str, *, tables: bool = True,
                        rolling_settings: dict | None = None) -> str:
    """Write the demo workbook: the synthetic panel in every FL_* input, each input an Excel
    table (``tables=False``: plain named ranges over the same cells). ``rolling_settings``:
    the ``FL_ROLLING_SETTINGS`` rows (default none: every default; ``xl-factorlasso demo``
    writes :data:`DEMO_ROLLING`)."""
    from .core.datasets import load_demo_panel
    from .workbook._builder import build_workbook

    demo = load_demo_panel()
    classes = demo.clusters.map(_CLASS_TAGS)
    return build_workbook(
        path,
        returns=demo.y,
        factors=demo.x,
        signs=demo.signs,
        prior=demo.prior,
        settings={
            "model_type": "HCGL",
            "span": 52,
            "n_clusters": 4,
            "l1_weight": 0.1,
            "reg_lambda": 1e-5,
            "cv_lambdas": "auto",
            "cv_n_lambdas": 15,
            "cv_splits": 5,
            "annualization_factor": 52,
        },
        portfolio_settings={"covariance": "factor", "max_weights": 0.15},
        constraints=["EQ <= 0.40", "GOV >= 0.20"],
        asset_groups=pd.DataFrame({"asset_class": classes}),
        rolling_settings=rolling_settings,
        description=demo.description,
        readable=True,
        tables=tables,
    )


def _print_fit(model, demo) -> None:
    from .core import assemble_factor_covariance
    from .core.datasets import recovery_metrics

    coef = model.coef_
    print("Estimated loadings (assets x factors; '.' = zero)")
    print(_table(coef))
    r = recovery_metrics(coef, demo.coef, tol=1e-6)
    print(
        f"\nRecovery vs the true loadings: {r['active']} active cells "
        f"({int((demo.coef != 0).to_numpy().sum())} true), true-positive rate {r['tpr']:.2f}, "
        f"false-positive rate {r['fpr']:.2f}, sign agreement on the true support "
        f"{r['sign_agreement']:.2f}, relative error {r['rel_error']:.3f}"
    )
    vol = assemble_factor_covariance(model, demo.x, annualization_factor=52.0).volatility
    summary = pd.DataFrame(
        {
            "cluster": model.clusters_.astype(int),
            "true block": demo.clusters,
            "R2": model.r2_,
            "vol": vol["total"],
            "sys vol": vol["systematic"],
            "resid vol": vol["residual"],
        }
    )
    print("\nPer asset: discovered cluster, in-sample R^2 and annualised volatility split")
    print(_table(summary))


def run_demo(args: argparse.Namespace) -> int:
    """Build the demo workbook, cross-validate, refit and optimise into it, then backtest it
    walk-forward (a second save), and print a summary of each."""
    from ._progress import BACKTEST_UNIT, ProgressBar
    from .core.datasets import load_demo_panel
    from .workbook import XlsxFileIO, run_job, run_jobs

    demo = load_demo_panel()
    T, M, N = demo.shape
    path = os.path.abspath(args.out)
    print("xl-factorlasso demo")
    print("=" * 72)
    print(demo.description)
    print(f"{T} weeks x {M} factors -> {N} assets; a known sparse, signed loading matrix.")
    print("Model: HCGL (clusters discovered from the data) + sign matrix + prior, span=52,")
    print("       reg_lambda chosen by 5-fold expanding-window CV on an automatic grid.\n")
    build_demo_workbook(path, rolling_settings=DEMO_ROLLING)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = run_jobs(XlsxFileIO(path), ["refit_cv", "optimise_portfolio"],
                          verbose=not args.quiet)
    elapsed = time.perf_counter() - started
    fit, port = result.parts
    print(f"\nCross-validation, refit and portfolio in {elapsed:.2f} s: {fit.summary}\n")
    _print_fit(fit.model, demo)
    weights = port.model.weights_
    print(f"\nMaximum-diversification portfolio on the factor covariance: {port.summary}")
    print(_table(weights[weights.abs() > 1e-6].rename("weight")))
    # the backtest refits at every month end: the reg_lambda of FL_SETTINGS (the CV's choice
    # is not written back), a separate job and save after the snapshot above
    print(f"\nWalk-forward backtest ({', '.join(f'{k} {v}' for k, v in DEMO_ROLLING.items())})")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        backtest = run_job(XlsxFileIO(path), "backtest",
                           progress=None if args.quiet else ProgressBar(
                               sys.stderr, label=BACKTEST_UNIT))
    print(f"{backtest.summary} ({time.perf_counter() - started:.2f} s)")
    stats = getattr(backtest.model, "stats_", None)
    if isinstance(stats, pd.DataFrame) and not stats.empty:
        print("Strategy statistics (annualised; net = after transaction costs)")
        print(_stats_text(stats))
    print(f"\nWorkbook written: {path}")
    print(f"  outputs: {', '.join(dict.fromkeys([*result.written, *backtest.written]))}")
    return 0


def _print_outcome(result, started: float, out: str) -> None:
    """What every writing job ends with: its notes (FL_STATUS's message) and warnings, the
    names not written, time and file."""
    for note in dict.fromkeys(n for part in (result.parts or [result]) for n in part.notes):
        print(f"note: {note}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    if result.skipped:
        print(f"not written (name not defined): {', '.join(result.skipped)}")
    print(f"done in {time.perf_counter() - started:.2f} s -> {os.path.abspath(out)}")


def run_refit(args: argparse.Namespace) -> int:
    """Every step asked for is computed before anything is written; then one atomic save."""
    from .workbook import XlsxFileIO, run_jobs

    out = args.out or args.path
    started = time.perf_counter()
    steps = ["refit_cv" if args.cv else "refit"] + (["optimise_portfolio"] if args.portfolio
                                                     else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = run_jobs(XlsxFileIO(args.path, out), steps, pictures=not args.no_pictures,
                          verbose=args.cv)
    for part in result.parts or [result]:
        print(part.summary)
    _print_outcome(result, started, out)
    return 0


def _rolling_option(key: str):
    """argparse type of ``--scheduler`` / ``--n-jobs``: FL_ROLLING_SETTINGS' rule for ``key``
    (one rule for the sheet and the command line), checked before anything is read."""
    def parse(text: str):
        from .workbook._rolling_settings import ROLLING_KEYS
        from .workbook._settings import check_setting

        try:
            return check_setting(ROLLING_KEYS, key, text)
        except ValueError as err:
            message = str(err).removeprefix(f"{key}: ").removeprefix(f"{key} ")
            raise argparse.ArgumentTypeError(message) from None

    parse.__name__ = key  # argparse names the type in its messages
    return parse


def _stats_text(stats: pd.DataFrame) -> str:
    """The backtest's statistics table, strategies down (gross and net rows)."""
    frame = stats.copy()
    if isinstance(frame.index, pd.MultiIndex):
        frame.index = [" ".join(map(str, label)) for label in frame.index]
    return frame.to_string(float_format=lambda v: f"{v:.4f}", na_rep="n/a")


def run_backtest(args: argparse.Namespace) -> int:
    """Walk-forward backtest of a workbook: computed in full, then one atomic save; progress
    (steps done / total, elapsed, remaining) on stderr; Ctrl-C writes nothing."""
    from ._progress import BACKTEST_UNIT, ProgressBar
    from .workbook import XlsxFileIO, run_job

    out = args.out or args.path
    io = XlsxFileIO(args.path, out)
    bar = None if args.quiet else ProgressBar(sys.stderr, label=BACKTEST_UNIT)
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = run_job(io, "backtest", pictures=not args.no_pictures, progress=bar,
                             scheduler=args.scheduler, n_jobs=args.n_jobs)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print("xl-factorlasso backtest: interrupted; nothing was written", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    print(result.summary)
    stats = getattr(result.model, "stats_", None)
    if isinstance(stats, pd.DataFrame) and not stats.empty:
        print("\nStrategy statistics (annualised; net = after transaction costs)")
        print(_stats_text(stats))
    _print_outcome(result, started, out)
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from .workbook import XlsxFileIO
    from .workbook._inspect import inspect_workbook

    report = inspect_workbook(XlsxFileIO(args.path))
    print(f"{args.path}: contract names")
    print("\n".join(report.lines()))
    for note in report.notes:
        print(f"note: {note}")
    if report.problems:
        print(f"\n{len(report.problems)} problem(s):")
        for p in report.problems:
            print(f"  - {p}")
        return 1
    print("\nno problems found")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Run the xlwings Server add-in (optional extra ``server``); see docs/server.md."""
    from . import server  # imports neither xlwings nor xlwings-server by itself

    if args.new_token:
        token, digest = server.new_token()
        print(f"access token (give it to the user; Help pane -> Access token):\n  {token}")
        print(f"its SHA-256 digest (server side: {server.TOKEN_ENV}, comma-separated list):")
        print(f"  {digest}")
        return 0
    try:
        return server.serve(args.host, args.port, reload=args.reload, certs=args.certs,
                            env_file=args.env_file, workers=args.workers)
    except server.ServerSetupError as err:
        print(f"xl-factorlasso serve: {err}", file=sys.stderr)
        return 2


def run_template(args: argparse.Namespace) -> int:
    """Write a copy of a shipped template (``xl_factorlasso/templates/``) to ``args.path``."""
    from .templates import DATASETS, write_template

    path = write_template(args.path, macro=args.macro, server=args.server, data=args.data,
                          force=args.force)
    shown = f'"{args.path}"' if " " in args.path else args.path
    data = DATASETS[args.data]
    if args.macro:
        print(f"wrote {path}: the template with the Factor LASSO ribbon tab ({data})")
        print("next: open it in desktop Excel and enable macros; the buttons need the xlwings "
              "add-in once (xlwings addin install)")
    elif args.server:
        print(f"wrote {path}: the template for the server add-in ({data})")
        print("next: open it in Excel with the add-in of xl-factorlasso serve loaded: its "
              "Formulas sheet calls FACTORLASSO.FLASSO_*, its ribbon tab runs the jobs")
    else:
        print(f"wrote {path}: the template without macros, for the desktop add-in ({data})")
        print("next: open it in Excel; its Formulas sheet calls the desktop add-in's =FLASSO_* "
              "functions (for the server add-in: --server)")
    print(f"without Excel: xl-factorlasso refit {shown} --cv --portfolio")
    return 0


def run_returns(args: argparse.Namespace) -> int:
    """Prices (CSV or a workbook range) -> returns (CSV or .xlsx); nothing is written unless
    every price is read and every return computed."""
    from .workbook._price_files import check_output, read_price_block, write_returns
    from .workbook._prices import returns_from_prices

    check_output(args.out, force=args.force, source=args.prices)  # before the work
    block = read_price_block(args.prices, sheet=args.sheet, ref=args.range)
    returns = returns_from_prices(block, args.method, span_gaps=args.span_gaps)
    path = write_returns(returns, args.out, force=args.force)
    missing = int(returns.isna().to_numpy().sum())
    first, last = (_label_text(returns.index[i]) for i in (0, -1))
    print(f"wrote {path}: {args.method} returns of {returns.shape[1]} assets on "
          f"{returns.shape[0]} dates ({first} to {last}); {missing} missing")
    return 0


def _label_text(label) -> str:
    if isinstance(label, pd.Timestamp):
        return label.date().isoformat() if label == label.normalize() else label.isoformat()
    return f"{label:g}"


def user_guide() -> Path | None:
    """The folder of the user guide (``index.md``, ...): inside the installed package (the
    wheel ships ``docs/`` as ``xl_factorlasso/docs/``), else ``docs/`` of a source checkout."""
    here = Path(__file__).resolve().parent
    if (here / "docs" / "index.md").is_file():
        return here / "docs"
    if (here.parent / "pyproject.toml").is_file() and (here.parent / "docs" / "index.md").is_file():
        return here.parent / "docs"
    return None


def _guide_line() -> str:
    guide = user_guide()
    if guide is None:
        return "User guide: docs/ of the source repository (not installed here)"
    return f"User guide (Markdown): {guide / 'index.md'}"


def build_parser() -> argparse.ArgumentParser:
    from .templates import DATASETS, FOLDER, VARIANTS, template_name

    parser = argparse.ArgumentParser(
        prog="xl-factorlasso",
        description="Sparse factor models and maximum-diversification portfolios for Excel.",
        epilog=f"{_guide_line()}\nA workbook to start from: xl-factorlasso template --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write a workbook with synthetic sample data and fit it")
    demo.add_argument("--out", default=DEMO_FILE, help=f"workbook to write (default {DEMO_FILE})")
    demo.add_argument("--quiet", action="store_true", help="no progress lines")
    demo.set_defaults(func=run_demo)
    refit = sub.add_parser("refit", help="refit the factor model of a workbook (.xlsx/.xlsm)")
    refit.add_argument("path")
    refit.add_argument("--cv", action="store_true", help="cross-validate reg_lambda first")
    refit.add_argument("--portfolio", action="store_true", help="then optimise the portfolio")
    refit.add_argument("--out", help="write to this file instead of PATH")
    refit.add_argument("--no-pictures", action="store_true", help="no heatmap/dendrogram")
    refit.set_defaults(func=run_refit)
    backtest = sub.add_parser(
        "backtest", help="walk-forward backtest of a workbook's portfolio (FL_ROLLING_SETTINGS)",
        description="At every rebalancing date of FL_ROLLING_SETTINGS: refit the factor model "
                    "on the data\nup to that date, re-optimise the maximum-diversification "
                    "portfolio (with the\nportfolio inputs), and hold it to the next date; "
                    "sample-covariance, EWMA and\nequal-weight portfolios alongside. Every date "
                    "is computed before anything is\nwritten, then one atomic save; Ctrl-C "
                    "writes nothing. Progress (dates done /\ntotal, elapsed, remaining) goes "
                    "to stderr, the summary and statistics to stdout.",
        epilog="examples:\n"
               "  xl-factorlasso backtest book.xlsx\n"
               "  xl-factorlasso backtest book.xlsx --n-jobs 2 --out result.xlsx\n"
               "  xl-factorlasso backtest book.xlsx --scheduler tcp://127.0.0.1:8786",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backtest.add_argument("path")
    backtest.add_argument("--scheduler", metavar="ADDR", type=_rolling_option("scheduler"),
                          help="run the dates on this Dask scheduler (tcp://host:port) "
                               "instead of FL_ROLLING_SETTINGS' scheduler")
    backtest.add_argument("--n-jobs", metavar="K", type=_rolling_option("n_jobs"),
                          help="blocks of dates run in parallel (-1: one per core) instead of "
                               "FL_ROLLING_SETTINGS' n_jobs")
    backtest.add_argument("--out", help="write to this file instead of PATH")
    backtest.add_argument("--no-pictures", action="store_true",
                          help="no cumulative-return or loading-history pictures")
    backtest.add_argument("--quiet", action="store_true", help="no progress bar")
    backtest.set_defaults(func=run_backtest)
    insp = sub.add_parser("inspect", help="list the FL_* names of a workbook and check its inputs")
    insp.add_argument("path")
    insp.set_defaults(func=run_inspect)
    template = sub.add_parser(
        "template", help="write a ready workbook, for the desktop add-in (.xlsx, or .xlsm with "
                         "the ribbon) or the server add-in",
        description="Write a ready workbook: every FL_* input an Excel table with sample data,\n"
                    "the Start sheet, dropdowns and the Formulas sheet. One template per add-in:\n"
                    "  (default)  .xlsx, the desktop add-in's functions FLASSO_FIT(...)\n"
                    "             (xlwings add-in, Import Functions), and the command line\n"
                    "  --macro    .xlsm, the same plus the Factor LASSO ribbon tab (VBA)\n"
                    "  --server   .xlsx, the server add-in's functions\n"
                    "             FACTORLASSO.FLASSO_FIT(...) (xl-factorlasso serve; Office.js)\n"
                    "Each with synthetic sample data, or with --data sp500 real data: weekly\n"
                    "returns of 20 S&P 500 stocks on 5 factor ETFs, 2014-2022, from skfolio's\n"
                    "datasets (BSD-3-Clause; source and licence on the Start sheet).\n"
                    "An existing PATH is replaced only with --force, and never while it is open\n"
                    "in Excel or LibreOffice, locked or read-only.",
        epilog="The templates come from inside the installed package:\n"
               + "".join(f"  {FOLDER / template_name(m, server=sv, data=d)}\n"
                         for m, sv, d in VARIANTS)
               + "They are built from workbook_template/ of the source repository by "
               "`make templates`\nand shipped in the wheel as package data.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    template.add_argument("path", metavar="PATH",
                          help="the workbook to write: .xlsx, or .xlsm with --macro")
    addin = template.add_mutually_exclusive_group()
    addin.add_argument("--macro", action="store_true",
                       help="the .xlsm with the Factor LASSO ribbon tab and its VBA (desktop)")
    addin.add_argument("--server", action="store_true",
                       help="the .xlsx for the server add-in (FACTORLASSO.FLASSO_* formulas)")
    template.add_argument("--data", choices=list(DATASETS), default="synthetic",
                          help="the sample data (default synthetic; sp500: real S&P 500 stocks "
                               "on factor ETFs)")
    template.add_argument("--force", action="store_true",
                          help="replace PATH if it exists (not while it is open or locked)")
    template.set_defaults(func=run_template)
    returns = sub.add_parser(
        "returns", help="turn a table of prices (CSV or a workbook sheet) into returns",
        description="Read prices -- a header row of asset names, dates increasing down the "
                    "first\ncolumn, prices > 0 below, a blank cell a missing price -- from a CSV "
                    "file or a\nworkbook, and write their returns (the first date has none) to "
                    "a CSV or an\n.xlsx file. A missing price gives a missing return; so does "
                    "the next one,\nunless --span-gaps. Numbers are never guessed: 1,5 or 5% "
                    "are refused, with the\nrow and column of the cell. OUT is written in one "
                    "step, replaced only with\n--force, and never while it is open in Excel or "
                    "LibreOffice, locked or read-only.",
        epilog="examples:\n"
               "  xl-factorlasso returns prices.csv returns.csv\n"
               "  xl-factorlasso returns book.xlsx returns.xlsx --sheet Prices --method log\n"
               "  xl-factorlasso returns book.xlsx returns.csv --range 'Prices!A1:F300'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    returns.add_argument("prices", metavar="PRICES",
                         help="a .csv file (UTF-8, comma-separated) or an .xlsx/.xlsm workbook")
    returns.add_argument("out", metavar="OUT", help="the returns to write: .csv or .xlsx")
    returns.add_argument("--method", choices=("simple", "log"), default="simple",
                         help="p_t / p_prev - 1 (simple, the default) or log(p_t / p_prev)")
    returns.add_argument("--span-gaps", action="store_true",
                         help="the first price after a missing one gives the return since the "
                              "last price (default: a missing return)")
    returns.add_argument("--sheet", metavar="NAME",
                         help="the workbook's sheet of prices (needed if it has several); its "
                              "used area is read")
    returns.add_argument("--range", metavar="REF",
                         help="a range (A1:F300, 'Prices!A1:F300') or a defined name of the "
                              "workbook, instead of the used area")
    returns.add_argument("--force", action="store_true",
                         help="replace OUT if it exists (not while it is open or locked)")
    returns.set_defaults(func=run_returns)
    serve = sub.add_parser(
        "serve", help="run the xlwings Server add-in (Office.js; extra 'server', licence key)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--reload", action="store_true", help="restart when the code changes")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="server processes (default 1); each computes one request at a time "
                            "and answers nothing else meanwhile, so N users can fit at once")
    serve.add_argument("--certs", metavar="DIR",
                       help="folder with localhost+2.pem and localhost+2-key.pem for HTTPS "
                            "(default: ./certs if present)")
    serve.add_argument("--env-file", metavar="PATH",
                       help="settings file (default: ./.env if present)")
    serve.add_argument("--new-token", action="store_true",
                       help="print a new access token for the custom auth provider and exit")
    serve.set_defaults(func=run_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:  # Ctrl-C: the shell's convention, without a traceback
        print("xl-factorlasso: interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as err:  # a clear message, never a traceback
        print(f"xl-factorlasso: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - a bug or exhaustion: still no traceback
        if os.environ.get("XL_FACTORLASSO_DEBUG"):
            raise
        print(f"xl-factorlasso: unexpected error ({type(err).__name__}): {err}; nothing was "
              "written. Set XL_FACTORLASSO_DEBUG=1 for the traceback and report it.",
              file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
