"""Estimator plumbing shared by the core estimators (scikit-learn conventions, no sklearn import).

scikit-learn is not a runtime dependency, yet users put our estimators in ``Pipeline`` and
``GridSearchCV`` and call ``sklearn.base.clone`` on them. Those only need ``get_params`` /
``set_params`` with sklearn's semantics and, since scikit-learn 1.6, ``__sklearn_tags__``.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["BaseEstimator"]


class BaseEstimator:
    """Parameters are the ``__init__`` arguments, stored untouched; fitted state ends with ``_``."""

    _estimator_type: str = "regressor"

    @classmethod
    def _get_param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator (and of nested estimators when ``deep``)."""
        out: dict[str, Any] = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                for key, sub in value.get_params(deep=True).items():
                    out[f"{name}__{key}"] = sub
            out[name] = value
        return out

    def set_params(self, **params: Any) -> BaseEstimator:
        """Set parameters; ``nested__name`` reaches a nested estimator's parameter."""
        valid = self._get_param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; "
                    f"valid parameters are {valid}"
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
            name: p.default
            for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = []
        for name in self._get_param_names():
            value = getattr(self, name)
            default = defaults.get(name, inspect.Parameter.empty)
            try:
                same = value is default or bool(value == default)
            except Exception:  # arrays, frames: ambiguous truth value
                same = False
            if not same:
                changed.append(f"{name}={value!r}" if not hasattr(value, "shape")
                               else f"{name}=<{type(value).__name__} {value.shape}>")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):  # pragma: no cover - exercised only where sklearn is installed
        from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags

        return Tags(
            estimator_type=self._estimator_type,
            target_tags=TargetTags(required=True, multi_output=True),
            regressor_tags=RegressorTags() if self._estimator_type == "regressor" else None,
            input_tags=InputTags(allow_nan=True),
        )
