"""pycaffe's ``net_spec``: write nets in Python, get a NetParameter (and prototxt) out.

    from tinycaffe import layers as L, params as P, NetSpec
    n = NetSpec()
    n.data, n.label = L.Data(source="train_lmdb", backend=P.Data.LMDB, batch_size=64, ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.conv1, n.label)
    print(n.to_proto())                     # prototxt text

``L.<Type>(*bottoms, **fields)`` makes a layer of that Caffe type. A field
goes to the type's own ``<type>_param`` when that message has it, else to
the LayerParameter (``loss_weight``, ``include``, ``param``...); fields
ending in ``param`` are always LayerParameter fields. Dicts fill
sub-messages, lists fill repeated fields. ``ntop=k`` gives k tops (0 for
none), ``in_place=True`` writes the top over the bottom. Layers are named
after their first top: the NetSpec attribute it was assigned to, else
``<Type><k>``. ``P.<Type>.<ENUM>`` is the enum value of ``<Type>Parameter``.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

from .errors import NetError
from .proto import caffe_pb2


def _param_field_by_type() -> dict[str, str]:
    """Caffe type name -> its LayerParameter field, read from the schema (e.g. InnerProduct -> inner_product_param)."""
    fields = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if field.name.endswith("_param") and field.message_type is not None:
            message = field.message_type.name
            if message.endswith("Parameter"):
                fields[message[: -len("Parameter")]] = field.name
    return fields


_PARAM_FIELD = _param_field_by_type()


def assign_proto(proto: Any, name: str, value: Any) -> None:
    """Set field ``name`` of ``proto``: dicts fill messages, lists (or one value) fill repeated fields."""
    try:
        current = getattr(proto, name)
    except AttributeError:
        raise NetError(f"net_spec: {type(proto).__name__} has no field {name!r}") from None
    repeated = hasattr(current, "extend")
    if repeated and not isinstance(value, (list, tuple)):
        value = [value]
    if isinstance(value, (list, tuple)):
        if not repeated:
            raise NetError(f"net_spec: field {name!r} of {type(proto).__name__} takes one value, got a list")
        if value and isinstance(value[0], dict):
            for item in value:
                message = current.add()
                for k, v in item.items():
                    assign_proto(message, k, v)
        else:
            current.extend(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            assign_proto(current, k, v)
    else:
        try:
            setattr(proto, name, value)
        except (TypeError, ValueError) as exc:
            raise NetError(f"net_spec: cannot set {type(proto).__name__}.{name} to {value!r}: {exc}") from None


class Top:
    """One output of a layer function; the handle passed on as another layer's bottom."""

    def __init__(self, fn: "Function", n: int):
        self.fn = fn
        self.n = n

    def to_proto(self) -> caffe_pb2.NetParameter:
        """The net of every layer this top depends on."""
        return to_proto(self)

    def _to_proto(self, layers, names, autonames) -> None:
        self.fn._to_proto(layers, names, autonames)


class Function:
    """One layer: its type, its bottoms (Tops) and its fields."""

    def __init__(self, type_name: str, inputs: tuple, params: dict):
        for i, inp in enumerate(inputs):
            if not isinstance(inp, Top):
                raise NetError(f"net_spec: bottom {i} of a {type_name} layer is a {type(inp).__name__}, "
                               "not a layer's top")
        self.type_name = type_name
        self.inputs = inputs
        params = dict(params)
        self.ntop = params.pop("ntop", 1)
        self.in_place = params.pop("in_place", False)
        self.params = params
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _top_name(self, top: Top, names, autonames) -> str:
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = f"{top.fn.type_name}{autonames[top.fn.type_name]}"
        return names[top]

    def _name(self, names, autonames) -> str:
        if self not in names:
            if self.ntop > 0:
                names[self] = self._top_name(self.tops[0], names, autonames)
            else:
                autonames[self.type_name] += 1
                names[self] = f"{self.type_name}{autonames[self.type_name]}"
        return names[self]

    def _to_proto(self, layers, names, autonames) -> None:
        if self in layers:
            return
        bottoms = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            bottoms.append(layers[inp.fn].top[inp.n])
        layer = caffe_pb2.LayerParameter(type=self.type_name)
        layer.bottom.extend(bottoms)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            layer.top.extend(self._top_name(t, names, autonames) for t in self.tops)
        layer.name = self._name(names, autonames)
        own = _PARAM_FIELD.get(self.type_name)
        for key, value in self.params.items():
            if key.endswith("param") or own is None or not _has_field(getattr(layer, own), key):
                assign_proto(layer, key, value)
            else:
                assign_proto(getattr(layer, own), key, value)
        layers[self] = layer


def _has_field(message: Any, name: str) -> bool:
    return name in message.DESCRIPTOR.fields_by_name


def to_proto(*tops: Top) -> caffe_pb2.NetParameter:
    """The NetParameter holding ``tops`` and every layer they depend on, inputs first."""
    layers: "OrderedDict[Function, caffe_pb2.LayerParameter]" = OrderedDict()
    autonames: Counter = Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class NetSpec:
    """Named tops: ``n.conv1 = L.Convolution(n.data, ...)`` names the layer and its top "conv1"."""

    def __init__(self):
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name: str, value: Any) -> None:
        self.tops[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(f"NetSpec has no top named {name!r}") from None

    def __setitem__(self, key: str, value: Any) -> None:
        self.__setattr__(key, value)

    def __getitem__(self, item: str) -> Any:
        return self.__getattr__(item)

    def __delitem__(self, name: str) -> None:
        del self.tops[name]

    def keys(self) -> list[str]:
        return list(self.tops.keys())

    def vals(self) -> list[Any]:
        return list(self.tops.values())

    def to_proto(self) -> caffe_pb2.NetParameter:
        """The NetParameter of every named top (and what they depend on), in assignment order."""
        names = {top: name for name, top in self.tops.items()}
        autonames: Counter = Counter()
        layers: "OrderedDict[Function, caffe_pb2.LayerParameter]" = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """``L.Convolution(...)``: any attribute is a layer function of that Caffe type."""

    def __getattr__(self, type_name: str):
        if type_name.startswith("__"):
            raise AttributeError(type_name)

        def layer_fn(*args: Top, **kwargs: Any):
            fn = Function(type_name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops

        return layer_fn


class Parameters:
    """``P.Pooling.MAX``: the enum values of ``<Type>Parameter`` messages."""

    def __getattr__(self, type_name: str):
        if type_name.startswith("__"):
            raise AttributeError(type_name)
        message = getattr(caffe_pb2, f"{type_name}Parameter", None)
        if message is None:
            raise AttributeError(f"caffe_pb2 has no {type_name}Parameter")

        class _Enums:
            def __getattr__(self, name: str):
                if name.startswith("__"):
                    raise AttributeError(name)
                try:
                    return getattr(message, name)
                except AttributeError:
                    raise AttributeError(f"{type_name}Parameter has no value {name!r}") from None

        return _Enums()


layers = Layers()
params = Parameters()
