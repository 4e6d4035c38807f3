"""Reading Caffe's 2-D geometry fields (kernel/stride/pad/dilation, or their _h/_w forms)."""
from __future__ import annotations

from ..errors import NetError


def pair(where: str, what: str, values, h: int | None, w: int | None, default: int | None) -> tuple[int, int]:
    """(h, w) from either a repeated/scalar field or explicit ``what_h``/``what_w``.

    ``values`` is the repeated (conv) or scalar (pooling) field's value; a
    repeated field may hold one value for both axes or one per axis.
    """
    if h is not None or w is not None:
        if values:
            raise NetError(f"{where}: give either {what} or {what}_h/{what}_w, not both")
        if h is None or w is None:
            raise NetError(f"{where}: {what}_h and {what}_w must be given together")
        return int(h), int(w)
    if isinstance(values, int):
        values = [values]
    values = list(values)
    if not values:
        if default is None:
            raise NetError(f"{where}: {what} is required")
        return default, default
    if len(values) == 1:
        return int(values[0]), int(values[0])
    if len(values) == 2:
        return int(values[0]), int(values[1])
    raise NetError(f"{where}: {what} has {len(values)} values; only 2-D is supported")


def opt(msg, field: str) -> int | None:
    """The field's value if it was set, else None."""
    return getattr(msg, field) if msg.HasField(field) else None


def canonical_axis(where: str, axis: int, num_axes: int) -> int:
    """Caffe's CanonicalAxisIndex: negative axes count from the end."""
    if not -num_axes <= axis < max(num_axes, 1):
        raise NetError(f"{where}: axis {axis} is out of range for a {num_axes}-axis blob")
    return axis % num_axes if num_axes else 0
