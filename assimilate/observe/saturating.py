"""A saturating sensor: the linear part of another operator, then ``w / (1 + |w|)``."""

from __future__ import annotations

from assimilate.observe.operator import Operator

__all__ = ["saturating"]


def saturating(base: Operator) -> Operator:
    """``y = w / (1 + |w|)`` with ``w`` the weighted sum of ``base``.

    A sensor that saturates for large signals: nearly linear for ``|w| << 1``, bounded in
    (-1, 1), so large amplitudes are observed with little precision. ``matrix()`` is still
    the linear part; ``is_linear`` is False, so linear methods (OI, Kalman) must refuse it.
    """
    return base.with_transform("saturating")
