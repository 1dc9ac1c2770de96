"""Estimator plumbing shared by the core estimators (scikit-learn conventions, no sklearn import).

scikit-learn is not a runtime dependency, yet users put our estimators in ``Pipeline`` and
``GridSearchCV`` and call ``sklearn.base.clone`` on them. Those only need ``get_params`` /
``set_params`` with sklearn's semantics and, since scikit-learn 1.6, ``__sklearn_tags__``.
Estimators store their ``__init__`` arguments untouched, validate them in ``fit`` and name
fitted attributes with a trailing underscore.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import numpy as np

__all__ = ["BaseEstimator", "clone"]

_PARAM_NAMES: dict[type, list[str]] = {}  # BaseEstimator._get_param_names, per class


def _is_estimator(obj: Any) -> bool:
    return hasattr(obj, "get_params") and not isinstance(obj, type)


def clone(estimator: Any) -> Any:
    """A new unfitted estimator with the same parameters (sklearn ``clone`` semantics).

    Estimators found in parameters (directly or in lists/tuples) are cloned recursively; other
    values are deep-copied. Objects without ``get_params`` are deep-copied, except a Dask
    ``Client`` (a connection, shared).
    """
    if isinstance(estimator, (list, tuple)):
        return type(estimator)(clone(e) for e in estimator)
    if not _is_estimator(estimator):
        # a live connection (a dask.distributed.Client) is shared by the clones, not copied
        if type(estimator).__module__.startswith("distributed."):
            return estimator
        return copy.deepcopy(estimator)
    params = estimator.get_params(deep=False)
    return type(estimator)(**{name: clone(value) for name, value in params.items()})


def _equal_default(value: Any, default: Any) -> bool:
    if value is default:
        return True
    if isinstance(value, (np.ndarray, list, tuple, dict)) or _is_estimator(value):
        return False
    if hasattr(value, "shape"):  # DataFrame, Series: never "equal" to a scalar default
        return False
    try:
        return bool(value == default) and type(value) is type(default)
    except Exception:  # noqa: BLE001 - exotic __eq__: treat as changed
        return False


class BaseEstimator:
    """``get_params``, ``set_params``, scikit-learn tags and a repr of the changed parameters.

    Subclasses set ``_estimator_type`` (``"regressor"`` for the factor models, ``None`` for
    optimisers, whose ``y`` is optional).
    """

    _estimator_type: str | None = "regressor"

    @classmethod
    def _get_param_names(cls) -> list[str]:
        # (read once per class: inspect.signature is slow, and a rolling fit clones its model
        # at every date)
        names = _PARAM_NAMES.get(cls)
        if names is None:
            signature = inspect.signature(cls.__init__)
            names = _PARAM_NAMES[cls] = sorted(
                name
                for name, p in signature.parameters.items()
                if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            )
        return list(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of nested estimators as ``<name>__<param>``.

        Returns
        -------
        dict
        """
        out: dict[str, Any] = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and _is_estimator(value):
                out.update((f"{name}__{k}", v) for k, v in value.get_params(deep=True).items())
            out[name] = value
        return out

    def set_params(self, **params: Any) -> BaseEstimator:
        """Set parameters, including nested ones as ``<name>__<param>``.

        Returns
        -------
        self
        """
        valid = self._get_param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; valid parameters: "
                    f"{', '.join(valid)}"
                )
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = []
        for name in self._get_param_names():
            value = getattr(self, name)
            if _equal_default(value, defaults.get(name)):
                continue
            shown = f"<{type(value).__name__} {value.shape}>" if hasattr(value, "shape") else repr(
                value
            )
            changed.append(f"{name}={shown}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):  # pragma: no cover - exercised only where sklearn is installed
        from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags

        regressor = self._estimator_type == "regressor"
        return Tags(
            estimator_type=self._estimator_type,
            target_tags=TargetTags(required=regressor, multi_output=True),
            regressor_tags=RegressorTags() if regressor else None,
            input_tags=InputTags(allow_nan=True),
        )
