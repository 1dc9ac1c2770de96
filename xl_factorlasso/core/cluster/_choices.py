"""The named options of cluster discovery, with factorlasso 1.0.6's names and string values.

Each is a ``str`` enum, so a plain string (``"gerber"``) and a member
(``DependenceMeasure.GERBER``) are interchangeable, and factorlasso's own members are accepted
too (they carry the same values).
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "ClusterCorrelationTransform",
    "DependenceMeasure",
    "DistanceTransform",
    "parse_choice",
]


class DependenceMeasure(str, Enum):
    """Signed dependence measure of the responses that the clustering reads.

    ``PEARSON`` (default) product-moment correlation; ``SPEARMAN`` Pearson correlation of the
    ranks; ``GERBER`` the Gerber statistic (share of joint moves beyond a threshold).
    """

    PEARSON = "pearson"
    SPEARMAN = "spearman"
    GERBER = "gerber"


class DistanceTransform(str, Enum):
    """Map from a correlation ``rho`` to the distance the linkage merges on.

    ``ONE_MINUS_RHO`` (default) ``1 - rho``; ``CHORD`` ``sqrt(2 (1 - rho))``, the Euclidean
    distance of standardised series; ``ARCCOS`` ``arccos(rho)``, their angle.
    """

    ONE_MINUS_RHO = "one_minus_rho"
    CHORD = "chord"
    ARCCOS = "arccos"


class ClusterCorrelationTransform(str, Enum):
    """Optional change of the dependence matrix before clustering.

    ``NONE`` (default) leaves it as it is; ``REMOVE_PC1`` removes its dominant eigencomponent
    (the common mode) and restandardises the rest to unit diagonal.
    """

    NONE = "none"
    REMOVE_PC1 = "remove_pc1"


def parse_choice(enum_cls: type[Enum], value, name: str):
    """The member of ``enum_cls`` that ``value`` names.

    Accepts a member (of this or of factorlasso's enum of the same name: anything with the
    same ``value``) or its value as a string, ignoring case and surrounding spaces.

    Raises
    ------
    ValueError
        ``"<name> must be one of 'a', 'b', got <value>"``.
    """
    key = value.value if isinstance(value, Enum) else value
    if isinstance(key, str):
        key = key.strip().lower()
        for member in enum_cls:
            if member.value == key:
                return member
    allowed = ", ".join(repr(m.value) for m in enum_cls)
    raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
