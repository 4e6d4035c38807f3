"""Write the bundled CIFAR-10 net definitions under prototxt/.

    python tools/make_prototxt.py

The nets have the layer structure of Caffe's CIFAR-10 "quick" and "full"
examples. ``--variants`` also writes the study's narrowed train/test nets,
cifar10_full_c1_<n> (conv1 = n filters) and cifar10_full_c2_<n> (conv2 = n)
for n in 4, 8, ..., 28 (n = 32 is cifar10_full_train_test itself).
``variant_nets()`` gives the same texts for other data paths (the split
timing bench writes its own copies that read a temporary LMDB).

    python tools/make_prototxt.py --variants
"""
from __future__ import annotations

import argparse
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "prototxt"


def data_layers(train_source: str, test_source: str, mean: str, batch: int = 100) -> str:
    out = []
    for phase, source in (("TRAIN", train_source), ("TEST", test_source)):
        out.append(f"""layer {{
  name: "cifar"
  type: "Data"
  top: "data"
  top: "label"
  include {{ phase: {phase} }}
  transform_param {{ mean_file: "{mean}" }}
  data_param {{ source: "{source}" batch_size: {batch} backend: LMDB }}
}}""")
    return "\n".join(out)


def input_layer(batch: int = 100) -> str:
    return f"""layer {{
  name: "data"
  type: "Input"
  top: "data"
  input_param {{ shape {{ dim: [ {batch}, 3, 32, 32 ] }} }}
}}"""


def conv(name: str, bottom: str, n: int, std: float, lr: bool = True) -> str:
    params = "  param { lr_mult: 1 }\n  param { lr_mult: 2 }\n" if lr else ""
    return f"""layer {{
  name: "{name}"
  type: "Convolution"
  bottom: "{bottom}"
  top: "{name}"
{params}  convolution_param {{
    num_output: {n}
    pad: 2
    kernel_size: 5
    stride: 1
    weight_filler {{ type: "gaussian" std: {std} }}
    bias_filler {{ type: "constant" }}
  }}
}}"""


def pool(name: str, bottom: str, method: str) -> str:
    return f"""layer {{
  name: "{name}"
  type: "Pooling"
  bottom: "{bottom}"
  top: "{name}"
  pooling_param {{ pool: {method} kernel_size: 3 stride: 2 }}
}}"""


def relu(name: str, blob: str) -> str:
    return f"""layer {{
  name: "{name}"
  type: "ReLU"
  bottom: "{blob}"
  top: "{blob}"
}}"""


def lrn(name: str, bottom: str) -> str:
    return f"""layer {{
  name: "{name}"
  type: "LRN"
  bottom: "{bottom}"
  top: "{name}"
  lrn_param {{ local_size: 3 alpha: 5e-05 beta: 0.75 norm_region: WITHIN_CHANNEL }}
}}"""


def ip(name: str, bottom: str, n: int, std: float, decay: bool = False) -> str:
    decay1, decay2 = (" decay_mult: 250", " decay_mult: 0") if decay else ("", "")
    return f"""layer {{
  name: "{name}"
  type: "InnerProduct"
  bottom: "{bottom}"
  top: "{name}"
  param {{ lr_mult: 1{decay1} }}
  param {{ lr_mult: 2{decay2} }}
  inner_product_param {{
    num_output: {n}
    weight_filler {{ type: "gaussian" std: {std} }}
    bias_filler {{ type: "constant" }}
  }}
}}"""


def heads(logits: str, deploy: bool) -> str:
    if deploy:
        return f"""layer {{
  name: "prob"
  type: "Softmax"
  bottom: "{logits}"
  top: "prob"
}}"""
    return f"""layer {{
  name: "accuracy"
  type: "Accuracy"
  bottom: "{logits}"
  bottom: "label"
  top: "accuracy"
  include {{ phase: TEST }}
}}
layer {{
  name: "loss"
  type: "SoftmaxWithLoss"
  bottom: "{logits}"
  bottom: "label"
  top: "loss"
}}"""


def full_net(name: str, head: str, deploy: bool, conv1: int = 32, conv2: int = 32) -> str:
    body = [
        head,
        conv("conv1", "data", conv1, 0.0001),
        pool("pool1", "conv1", "MAX"),
        relu("relu1", "pool1"),
        lrn("norm1", "pool1"),
        conv("conv2", "norm1", conv2, 0.01),
        relu("relu2", "conv2"),
        pool("pool2", "conv2", "AVE"),
        lrn("norm2", "pool2"),
        conv("conv3", "norm2", 64, 0.01, lr=False),
        relu("relu3", "conv3"),
        pool("pool3", "conv3", "AVE"),
        ip("ip1", "pool3", 10, 0.01, decay=True),
        heads("ip1", deploy),
    ]
    return f'name: "{name}"\n' + "\n".join(body) + "\n"


def quick_net(name: str, head: str, deploy: bool) -> str:
    body = [
        head,
        conv("conv1", "data", 32, 0.0001),
        pool("pool1", "conv1", "MAX"),
        relu("relu1", "pool1"),
        conv("conv2", "pool1", 32, 0.01),
        relu("relu2", "conv2"),
        pool("pool2", "conv2", "AVE"),
        conv("conv3", "pool2", 64, 0.01),
        relu("relu3", "conv3"),
        pool("pool3", "conv3", "AVE"),
        ip("ip1", "pool3", 64, 0.1),
        ip("ip2", "ip1", 10, 0.1),
        heads("ip2", deploy),
    ]
    return f'name: "{name}"\n' + "\n".join(body) + "\n"


FULL_DATA = data_layers("data/cifar10/cifar10_train_lmdb", "data/cifar10/cifar10_test_lmdb",
                        "data/cifar10/mean.binaryproto")
SAMPLE_DATA = data_layers("data/cifar10/cifar10_train_lmdb", "tinycaffe/sample/cifar10_test_lmdb",
                          "tinycaffe/sample/mean.binaryproto")


#: The study's filter counts (Tables 2 and 3); 32 is the unmodified net.
FILTER_COUNTS = (4, 8, 12, 16, 20, 24, 28, 32)


def variant_filters(layer: str, n: int) -> dict[str, int]:
    """``full_net`` keyword arguments for the study's variant: ``layer`` ("conv1"/"conv2") has ``n`` filters."""
    if layer not in ("conv1", "conv2"):
        raise ValueError(f"variants narrow conv1 or conv2, not {layer!r}")
    if n <= 0:
        raise ValueError(f"filter count must be positive, got {n}")
    return {layer: n}


def variant_name(layer: str, n: int) -> str:
    """File stem of a variant: cifar10_full_c1_<n> or cifar10_full_c2_<n>."""
    return f"cifar10_full_c{layer[-1]}_{n}"


def variant_nets(head: str = FULL_DATA, deploy: bool = False,
                 counts=FILTER_COUNTS, include_full: bool = False) -> dict[str, str]:
    """{file name: prototxt text} of the conv1 and conv2 variants.

    ``head`` is the data part (``data_layers(...)`` or ``input_layer()``).
    n = 32 is the unmodified net, so it is left out unless ``include_full``.
    """
    out = {}
    for layer in ("conv1", "conv2"):
        for n in counts:
            if n == 32 and not include_full:
                continue
            stem = variant_name(layer, n)
            net_name = f"CIFAR10_full_c{layer[-1]}_{n}" + ("_deploy" if deploy else "")
            out[f"{stem}.prototxt"] = full_net(net_name, head, deploy, **variant_filters(layer, n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--variants", action="store_true",
                    help="also write the study's 14 train/test variants cifar10_full_c{1,2}_<n>.prototxt")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    files = {
        "cifar10_full_train_test.prototxt": full_net("CIFAR10_full", FULL_DATA, False),
        "cifar10_full.prototxt": full_net("CIFAR10_full_deploy", input_layer(), True),
        "cifar10_full_sample.prototxt": full_net("CIFAR10_full_sample", SAMPLE_DATA, False),
        "cifar10_quick_sample.prototxt": quick_net("CIFAR10_quick_sample", SAMPLE_DATA, False),
        "cifar10_quick_train_test.prototxt": quick_net("CIFAR10_quick", FULL_DATA, False),
        "cifar10_quick.prototxt": quick_net("CIFAR10_quick_deploy", input_layer(), True),
    }
    if args.variants:
        files.update(variant_nets(FULL_DATA))
    header = "# Written by tools/make_prototxt.py; edit that script, not this file.\n"
    for fname, text in files.items():
        (args.out / fname).write_text(header + text)
        print("wrote", args.out / fname)


if __name__ == "__main__":
    main()
