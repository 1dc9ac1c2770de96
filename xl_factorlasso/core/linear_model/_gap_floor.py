"""A quick SolveError where the duality gap's rounding makes ``tol`` out of reach.

The gap's support term ``<V, D>`` (``V`` the negative gradient, ``D = B - B0``) vanishes at the
minimiser only in exact arithmetic: its entries are rounded to about ``e_j``
(:meth:`FastEngine._rounding`), so the term to about ``sum_j |d_j| e_j``
(:meth:`FastEngine.gap_floors`). Far below ``lambda_max`` on a wide panel, or with factors
badly scaled against the prior, that floor can exceed the objective by orders of magnitude: no
double-precision point, the minimiser's included, shows a relative gap of ``tol``, and every
further iteration, CVXPY solve or polish only spends time. :func:`check_floor` says so at once,
where the floor bounds what the gap can show:

* blocks (FCGL, cooperative), not cells or rows. The scaling dual point divides a unit's
  gradient by its dual norm, the largest of its groups'; to first order that division cancels
  the rounding of the group that sets the norm, not the others'. A LASSO response or a row
  group is one such constraint (a row is one group; a cell's L1 ball is a box whose clipped
  translation cancels it too), so its gap rounds to second order: an HCGL fit at 1e-8 had
  floors 1e-5 to 1e-6 times above its gaps, and CLARABEL's point certified (random search,
  seed 440). So per cluster the largest group's share is left out;
* only cells strictly inside the box: at a bound the box term absorbs the gradient's rounding
  (``v3``, :meth:`FastEngine._box_part`);
* only units whose gap is the scaling point's (some member's Gram singular): the translated
  point's projection removes the rounding along a block's own direction.

LASSO's certificate instead excuses a gap within its floor (:meth:`FastEngine._within_rounding`).
The floor is taken at an iterate, not at the minimiser: from the prior the loadings' departure
``|D|`` grows towards the minimiser's and the objective falls, so the iterate's share
understates the minimiser's.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import SolveError

__all__ = ["FLOOR_CAP", "FLOOR_EVERY", "check_floor", "floor_applies", "floor_share",
           "within_floor"]

# The largest relative gap the rounding floor may excuse, in units of tol (LASSO's
# _within_rounding); beyond it, here, the point where the floor makes tol out of reach.
FLOOR_CAP = 100.0
# FastEngine.solve's floor_stop looks at the floor every this many iterations (about an
# iteration's work each time)
FLOOR_EVERY = 200


def within_floor(gaps, objs, floors, tol: float):
    """Where a gap exceeds ``tol`` of its objective only by its rounding floor, and stays
    below ``FLOOR_CAP`` tol (elementwise): the rule by which rounding excuses a gap, for a
    point shown or known to be stationary to rounding (LASSO's responses,
    ``FastEngine._within_rounding``; the duals' Newton points, ``CertifiedSolver._dual``).
    Beyond the cap rounding excuses nothing: iterates that diverged along a null direction
    (loadings 1e16, a constant factor and a response with 7 rows for 10 factors) have a floor
    as large as their objective, and their gap of 1.0 relative passed before it (random
    search)."""
    return (gaps <= tol * objs + floors) & (gaps <= FLOOR_CAP * tol * objs)


def floor_applies(engine) -> bool:
    """Whether the floor bounds what the gap can show: blocks (FCGL, cooperative), not cells
    or rows (see the module docstring)."""
    return engine.geometry == "block"


def floor_share(engine, x: np.ndarray, lam: float) -> tuple[float, float]:
    """``(floor / objective, objective)`` at the feasible ``x``: the gap's rounding floor
    where it bounds what the gap can show (see the module docstring; 0 but for blocks, whose
    objective is then not evaluated: NaN)."""
    if not floor_applies(engine):
        return 0.0, np.nan
    objective = engine.objective(x, lam)
    if not objective > 0.0:
        return 0.0, objective
    singular = ~engine._invertible[engine.pattern]
    singular = np.bincount(engine.unit, weights=singular,
                           minlength=engine.n_units)[engine.unit] > 0
    inside = (x > engine.lo) & (x < engine.hi) & singular[:, None]
    d = x - engine.prior
    terms = np.where(inside, np.abs(d) * engine._rounding(x), 0.0).ravel()
    # the dual norm's groups: blocks, or a cooperative block's sign halves
    keys, per = (engine._half_keys(d), 2) if engine.coop else (engine.gid, 1)
    groups = np.bincount(keys, weights=terms, minlength=per * engine.n_groups)
    unit = engine.group_unit[np.arange(len(groups)) // per]
    largest = np.zeros(engine.n_units)
    np.maximum.at(largest, unit, groups)
    return float(groups.sum() - largest.sum()) / objective, objective


def check_floor(engine, x: np.ndarray, lam: float, tol: float, spent: int, gap: float,
                attempts=()) -> None:
    """SolveError where the gap's rounding floor at ``x`` (:func:`floor_share`) exceeds
    ``FLOOR_CAP`` tol of the objective; ``spent`` and ``gap`` (the iterations so far and their
    relative gap) go into the message, after the ``attempts`` so far.

    The random search's COOPERATIVE_CLUSTER_GROUP_LASSO cross-validation (factors scaled by 1e4,
    Gram entries ~1e9, 6-13 training rows, 20 factors) asked for penalties of 1e-17 to 1e-10 of
    ``lambda_max``: the objective (~1.5 at most) sat below the gaps' rounding (floors of 1e-6
    to 0.9 of it, CLARABEL's points at 4e-7 to 0.97), and each grid value spent 3 s in 2,000
    iterations, two CLARABEL solves and a 20,000-iteration polish before its SolveError."""
    share, objective = floor_share(engine, x, lam)
    if share > FLOOR_CAP * tol:
        message = (
            f"the relative duality gap cannot be certified to tol {tol:g} at reg_lambda="
            f"{lam:.3g}: the rounding of the gap's terms alone is {share:.1e} of the "
            f"objective ({objective:.3g}), which is tiny against the data's scale (a penalty far "
            f"below lambda_max on a wide panel, or badly scaled factors); raise reg_lambda, "
            f"rescale the factors or loosen tol (gap {gap:.1e} after {spent} iterations)")
        raise SolveError(message, [*attempts, ("fast", message)], gap=gap)
