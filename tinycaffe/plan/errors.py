"""The planner's error: bad profiles, links or cuts, named with their file."""
from __future__ import annotations

from ..errors import TinyCaffeError


class PlanError(TinyCaffeError):
    """A profile, link or plan request that cannot be used; the message says which file or layer."""
