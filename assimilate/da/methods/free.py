"""``free``: the model's ensemble run from the first background, observations ignored.

The floor every method must beat: whatever skill a method shows beyond this run comes
from the observations.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from assimilate.da.contract import Method

__all__ = ["Free"]


@dataclass(frozen=True)
class Free(Method):
    """No assimilation; ``model``: the dynamics that carry the members; ``sub_steps``: the
    forecaster's denoising sub-steps per step (0, the default: its own)."""

    name: ClassVar[str] = "free"
    uses_observations: ClassVar[bool] = False
    model: Literal["forecaster", "simulator"] = "forecaster"
    sub_steps: int = Field(0, ge=0, le=1024)
