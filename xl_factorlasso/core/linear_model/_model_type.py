"""The penalty families of :class:`LassoModel`."""

from __future__ import annotations

from enum import Enum

__all__ = ["LassoModelType"]


class LassoModelType(Enum):
    """Penalty family, with factorlasso's names and integer values.

    ``LASSO``
        ``lambda * sum |B - B0|``.
    ``UNILASSO``
        Two-stage univariate-guided LASSO per response (:mod:`._unilasso`): an L1 penalty
        on the stage-two weights ``theta``, ``B = theta * b`` (no signs, prior or groups).
    ``GROUP_LASSO``
        Row geometry on user groups (``group_data``: response -> group).
    ``HIERARCHICAL_CLUSTER_GROUP_LASSO`` (alias ``GROUP_LASSO_CLUSTERS``, "HCGL")
        Row geometry on groups discovered by hierarchical clustering of the responses.
    ``FACTOR_CLUSTER_GROUP_LASSO`` ("FCGL")
        Cluster x factor blocks: the responses of a cluster enter or leave a factor together.
    """

    LASSO = 1
    UNILASSO = 2
    GROUP_LASSO = 3
    HIERARCHICAL_CLUSTER_GROUP_LASSO = 4
    GROUP_LASSO_CLUSTERS = 4  # alias kept for users of older factorlasso releases
    FACTOR_CLUSTER_GROUP_LASSO = 5

    @classmethod
    def parse(cls, value: LassoModelType | str | int) -> LassoModelType:
        """Accept the enum, its name (any case, ``-``/space for ``_``), a short name or its value.

        Short names: ``lasso``, ``unilasso``, ``group``, ``hcgl``, ``fcgl``.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, bool):
            raise ValueError(f"model_type: {value!r} is not a LassoModelType")
        if isinstance(value, (int, float)) and float(value).is_integer():
            try:
                return cls(int(value))
            except ValueError:
                pass
        elif isinstance(value, str):
            key = value.strip().upper().replace("-", "_").replace(" ", "_")
            if key.startswith("LASSOMODELTYPE."):
                key = key.split(".", 1)[1]
            key = _SHORT_NAMES.get(key, key)
            if key in cls.__members__:
                return cls.__members__[key]
        names = ", ".join(["LASSO", "UNILASSO", "GROUP_LASSO", "HCGL", "FCGL"])
        raise ValueError(f"model_type: {value!r} is not one of {names}")

    @property
    def is_group(self) -> bool:
        return self not in (LassoModelType.LASSO, LassoModelType.UNILASSO)

    @property
    def discovers_clusters(self) -> bool:
        return self in (
            LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO,
            LassoModelType.FACTOR_CLUSTER_GROUP_LASSO,
        )

    @property
    def geometry(self) -> str:
        """``"cell"`` (LASSO, UNILASSO), ``"row"`` (GROUP_LASSO, HCGL) or ``"block"`` (FCGL)."""
        if self in (LassoModelType.LASSO, LassoModelType.UNILASSO):
            return "cell"
        if self is LassoModelType.FACTOR_CLUSTER_GROUP_LASSO:
            return "block"
        return "row"


_SHORT_NAMES = {
    "HCGL": "HIERARCHICAL_CLUSTER_GROUP_LASSO",
    "FCGL": "FACTOR_CLUSTER_GROUP_LASSO",
    "GROUP": "GROUP_LASSO",
    "CLUSTER_FACTOR_GROUP_LASSO": "FACTOR_CLUSTER_GROUP_LASSO",
}
