"""Phase, level and stage rules: which layers a net in a given state keeps."""
from __future__ import annotations

from ..errors import NetError


def state_meets_rule(phase: int, level: int, stages: set[str], rule) -> bool:
    """Caffe's StateMeetsRule: every condition the rule sets must hold."""
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    if any(s not in stages for s in rule.stage):
        return False
    if any(s in stages for s in rule.not_stage):
        return False
    return True


def layer_included(layer, phase: int, level: int, stages: set[str]) -> bool:
    """Whether ``layer`` belongs to a net in this state (include/exclude rules)."""
    if layer.include and layer.exclude:
        raise NetError(
            f"layer '{layer.name}': specify either include or exclude rules, not both"
        )
    if layer.include:
        return any(state_meets_rule(phase, level, stages, r) for r in layer.include)
    return not any(state_meets_rule(phase, level, stages, r) for r in layer.exclude)


def filter_layers(net_param, phase: int, level: int = 0, stages: tuple[str, ...] = ()):
    """A copy of ``net_param`` holding only the layers of this state."""
    out = type(net_param)()
    out.CopyFrom(net_param)
    del out.layer[:]
    stage_set = set(stages) | set(net_param.state.stage)
    level = level or net_param.state.level
    for layer in net_param.layer:
        if layer_included(layer, phase, level, stage_set):
            out.layer.add().CopyFrom(layer)
    out.state.phase = phase
    return out
