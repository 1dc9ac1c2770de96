"""xlwings-server's ``custom_scripts``: exactly the five ribbon scripts, nothing else.

Security: xlwings-server 1.20 answers ``POST /xlwings/custom-scripts-call/<name>`` with
``getattr(custom_scripts, name)(...)`` *without* checking the ``@script`` marker, so every public
attribute of this package is callable over HTTP. Import the decorated scripts by name only; never
``import *`` a module with helpers, never ``from __future__ import ...`` (it adds a name here),
and keep ``xl_factorlasso.ribbon.run_book_job`` / the ``*_caller`` desktop entry points out.
"""

from xl_factorlasso.ribbon import backtest, clear_outputs, optimise_portfolio, refit, refit_cv

__all__ = ["backtest", "clear_outputs", "optimise_portfolio", "refit", "refit_cv"]
