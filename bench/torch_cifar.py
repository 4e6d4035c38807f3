"""The CIFAR-10 quick and full nets as a tinycaffe Solver fed by an Input layer, and the
same nets built by hand in PyTorch with the solver's weights and SGD settings.

Shared by bench/train_throughput.py and the dev-only training cross-check
(tests/crosscheck/test_torch_training.py).  torch is imported by the caller.
"""
from __future__ import annotations

from pathlib import Path

from tinycaffe.proto import caffe_pb2
from tinycaffe.proto.prototxt import read_net
from tinycaffe.solver import Solver

BATCH = 100


def solver_for(prototxt: Path, batch: int = BATCH) -> Solver:
    """A Solver on the prototxt's TRAIN net with its Data layer replaced by an Input layer."""
    net = read_net(prototxt)
    layers = [lp for lp in net.layer if lp.type != "Data"]
    del net.layer[:]
    inp = net.layer.add(name="input", type="Input", top=["data", "label"])
    inp.input_param.shape.add().dim.extend([batch, 3, 32, 32])
    inp.input_param.shape.add().dim.extend([batch])
    net.layer.extend(layers)
    p = caffe_pb2.SolverParameter(base_lr=0.001, momentum=0.9, weight_decay=0.004, lr_policy="fixed",
                                  max_iter=10**9, display=0, snapshot_after_train=False, random_seed=1)
    p.net_param.CopyFrom(net)
    return Solver(p, log=lambda line: None)


def torch_model(torch, name: str, solver: Solver):
    """The same net by hand in torch, with the solver's current weights (the layer widths
    are read from them, so the study's narrowed cifar10_full variants work too)."""
    nn, F = torch.nn, torch.nn.functional
    params = solver.net.params

    def conv(layer):
        cout, cin = params[layer][0].data.shape[:2]
        m = nn.Conv2d(cin, cout, 5, padding=2)
        m.weight.data.copy_(torch.from_numpy(params[layer][0].data))
        m.bias.data.copy_(torch.from_numpy(params[layer][1].data))
        return m

    def ip(layer):
        cout, cin = params[layer][0].data.shape
        m = nn.Linear(cin, cout)
        m.weight.data.copy_(torch.from_numpy(params[layer][0].data))
        m.bias.data.copy_(torch.from_numpy(params[layer][1].data))
        return m

    def maxpool(x):
        return F.max_pool2d(x, 3, 2, ceil_mode=True)

    def avepool(x):  # pad 0: torch's ceil-mode divisor is Caffe's clipped window
        return F.avg_pool2d(x, 3, 2, ceil_mode=True)

    def lrn(x):  # Caffe's WITHIN_CHANNEL LRN, local_size 3
        return x * (1 + 5e-5 * F.avg_pool2d(x * x, 3, 1, 1, count_include_pad=True)) ** -0.75

    class Quick(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2, self.conv3 = conv("conv1"), conv("conv2"), conv("conv3")
            self.ip1, self.ip2 = ip("ip1"), ip("ip2")

        def forward(self, x):
            x = F.relu(maxpool(self.conv1(x)))
            x = avepool(F.relu(self.conv2(x)))
            x = avepool(F.relu(self.conv3(x)))
            return self.ip2(self.ip1(x.flatten(1)))

    class Full(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2, self.conv3 = conv("conv1"), conv("conv2"), conv("conv3")
            self.ip1 = ip("ip1")

        def forward(self, x):
            x = lrn(F.relu(maxpool(self.conv1(x))))
            x = lrn(avepool(F.relu(self.conv2(x))))
            x = avepool(F.relu(self.conv3(x)))
            return self.ip1(x.flatten(1))

    model = Quick() if name == "cifar10_quick" else Full()
    # Same order as the solver's learnable params (conv/ip weight, bias, layer by layer).
    tensors = [t for layer in solver.net.params for t in (getattr(model, layer).weight, getattr(model, layer).bias)]
    p = solver.param
    groups = [{"params": [t], "lr": p.base_lr * lp.lr_mult, "weight_decay": p.weight_decay * lp.decay_mult}
              for t, lp in zip(tensors, solver.params)]
    # torch: buf = m*buf + (g + wd*w); w -= lr*buf  ==  Caffe's h = m*h + lr*(g + wd*w); w -= h
    return model, torch.optim.SGD(groups, lr=p.base_lr, momentum=p.momentum)
