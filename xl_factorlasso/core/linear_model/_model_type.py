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
    ``COOPERATIVE_GROUP_LASSO`` ("COOP")
        Cooperative LASSO (Chiquet, Grandvalet and Charbonnier 2012) on the cluster x factor
        blocks of user groups: each block pays ``||D+||_2 + ||D-||_2``, so a block whose
        loadings share a sign costs less than a mixed one (soft sign coherence, no hard sign).
    ``COOPERATIVE_CLUSTER_GROUP_LASSO`` ("CCGL")
        The same penalty on clusters discovered as for HCGL / FCGL.
    """

    LASSO = 1
    UNILASSO = 2
    GROUP_LASSO = 3
    HIERARCHICAL_CLUSTER_GROUP_LASSO = 4
    GROUP_LASSO_CLUSTERS = 4  # alias kept for users of older factorlasso releases
    FACTOR_CLUSTER_GROUP_LASSO = 5
    COOPERATIVE_GROUP_LASSO = 6
    COOPERATIVE_CLUSTER_GROUP_LASSO = 7

    @classmethod
    def parse(cls, value: LassoModelType | str | int) -> LassoModelType:
        """Accept the enum, its name (any case, ``-``/space for ``_``), a short name or its value.

        Short names: ``lasso``, ``unilasso``, ``group``, ``hcgl``, ``fcgl``, ``coop``, ``ccgl``.
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
        names = ", ".join(["LASSO", "UNILASSO", "GROUP_LASSO", "HCGL", "FCGL",
                           "COOPERATIVE_GROUP_LASSO", "COOPERATIVE_CLUSTER_GROUP_LASSO"])
        raise ValueError(f"model_type: {value!r} is not one of {names}")

    @property
    def is_group(self) -> bool:
        return self not in (LassoModelType.LASSO, LassoModelType.UNILASSO)

    @property
    def discovers_clusters(self) -> bool:
        return self in (
            LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO,
            LassoModelType.FACTOR_CLUSTER_GROUP_LASSO,
            LassoModelType.COOPERATIVE_CLUSTER_GROUP_LASSO,
        )

    @property
    def is_cooperative(self) -> bool:
        """The cooperative penalty: blocks split into their positive and negative parts."""
        return self in (
            LassoModelType.COOPERATIVE_GROUP_LASSO,
            LassoModelType.COOPERATIVE_CLUSTER_GROUP_LASSO,
        )

    @property
    def uses_group_data(self) -> bool:
        """Groups come from ``group_data`` (GROUP_LASSO, COOPERATIVE_GROUP_LASSO)."""
        return self in (LassoModelType.GROUP_LASSO, LassoModelType.COOPERATIVE_GROUP_LASSO)

    @property
    def geometry(self) -> str:
        """``"cell"`` (LASSO, UNILASSO), ``"row"`` (GROUP_LASSO, HCGL) or ``"block"`` (FCGL and
        the cooperative types, whose blocks are split by sign: see ``is_cooperative``)."""
        if self in (LassoModelType.LASSO, LassoModelType.UNILASSO):
            return "cell"
        if self is LassoModelType.FACTOR_CLUSTER_GROUP_LASSO or self.is_cooperative:
            return "block"
        return "row"


_SHORT_NAMES = {
    "HCGL": "HIERARCHICAL_CLUSTER_GROUP_LASSO",
    "FCGL": "FACTOR_CLUSTER_GROUP_LASSO",
    "GROUP": "GROUP_LASSO",
    "CLUSTER_FACTOR_GROUP_LASSO": "FACTOR_CLUSTER_GROUP_LASSO",
    "COOP": "COOPERATIVE_GROUP_LASSO",
    "CCGL": "COOPERATIVE_CLUSTER_GROUP_LASSO",
}
