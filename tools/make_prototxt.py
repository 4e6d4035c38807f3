"""Write the bundled CIFAR-10 net definitions under prototxt/.

    python tools/make_prototxt.py

The nets have the layer structure of Caffe's CIFAR-10 "quick" and "full"
examples. ``--conv1``/``--conv2`` filter counts give the study's narrowed
variants (cifar10_full_c1_<n> / cifar10_full_c2_<n>).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    files = {
        "cifar10_full_train_test.prototxt": full_net("CIFAR10_full", FULL_DATA, False),
        "cifar10_full.prototxt": full_net("CIFAR10_full_deploy", input_layer(), True),
        "cifar10_full_sample.prototxt": full_net("CIFAR10_full_sample", SAMPLE_DATA, False),
        "cifar10_quick_train_test.prototxt": quick_net("CIFAR10_quick", FULL_DATA, False),
        "cifar10_quick.prototxt": quick_net("CIFAR10_quick_deploy", input_layer(), True),
    }
    header = "# Written by tools/make_prototxt.py; edit that script, not this file.\n"
    for fname, text in files.items():
        (args.out / fname).write_text(header + text)
        print("wrote", args.out / fname)


if __name__ == "__main__":
    main()
