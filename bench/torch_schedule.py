"""The study's schedule run by PyTorch instead of tinycaffe: is a gap to the paper the
schedule's or the engine's?

PyTorch (CPU) trains the hand-built cifar10_full of bench/torch_cifar.py from
the same initial weights as tinycaffe's run (tinycaffe's fillers with the
solver's random_seed), on the same batches in the same order (tinycaffe's
Data layer reads them from the LMDB, mean-subtracted), with the same SGD
(momentum, weight decay with each layer's decay_mult, lr_mult, lr x0.1 at
4,000), and scores all 10,000 test images every ``test_interval``
iterations. Print that beside the accuracy tinycaffe's run logged.

One difference is left: after the lr drop, torch's momentum buffer holds
unscaled gradients (its step is lr * buf), Caffe's holds steps already scaled
by the old lr, so for a few dozen iterations after 4,000 torch's steps are
smaller than Caffe's.

    python tools/train_study.py ... (tinycaffe's run first, for its log)
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/torch_schedule.py [--model full|c1_4|...]
        [--threads 2] [--max-iter N]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from machine import print_machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinycaffe.cli.common import set_threads  # noqa: E402
from tinycaffe.net import Net  # noqa: E402
from tinycaffe.solver import Solver, load_solver_param  # noqa: E402
from tinycaffe.solver.log import scores_by_iteration  # noqa: E402
from torch_cifar import torch_model  # noqa: E402

SOLVER = REPO / "prototxt" / "cifar10_full_study_solver.prototxt"
STUDY = REPO / "weights" / "study"


def logged_tests(log: Path) -> dict[int, float]:
    """Iteration -> accuracy of tinycaffe's own tests in its training log."""
    if not log.is_file():
        return {}
    scores = scores_by_iteration(log.read_text(encoding="utf-8").splitlines())
    return {it: s["accuracy"] for it, s in scores.items() if "accuracy" in s}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-iter", type=int, default=None, help="stop early (default: the schedule's)")
    ap.add_argument("--model", default="full", help="full, or a narrowed variant: c1_4, ..., c2_28")
    args = ap.parse_args(argv)
    import torch

    os.chdir(REPO)  # the net's LMDB and mean paths are relative to the repository root
    set_threads(1)
    torch.set_num_threads(args.threads)
    param = load_solver_param(SOLVER)
    if args.model != "full":  # the variant's net, as tools/train_study.py trains it
        param.net = f"prototxt/cifar10_full_{args.model}.prototxt"
    max_iter = args.max_iter or param.max_iter
    print_machine_info()
    print(f"{args.model} ({param.net}); torch {torch.__version__}, {args.threads} threads; schedule {SOLVER.relative_to(REPO)}: "
          f"{max_iter} iterations, lr {param.base_lr:g} x{param.gamma:g} at {list(param.stepvalue)}, "
          f"test every {param.test_interval} on {param.test_iter[0]} batches")
    solver = Solver(param, log=lambda line: None)  # its init: the weights tinycaffe started from
    train = solver.net
    test = Net(param.net, phase="test")
    data_layer = train.layer_names[0]
    model, opt = torch_model(torch, "cifar10_full", solver)
    base = [g["lr"] for g in opt.param_groups]
    ours = logged_tests(STUDY / f"{args.model}.log")
    start = time.perf_counter()

    def score() -> float:
        model.eval()
        hits = 0
        with torch.no_grad():
            for _ in range(param.test_iter[0]):
                test.forward(end=test.layer_names[0])
                x = torch.from_numpy(np.array(test.blobs["data"].data))
                y = np.asarray(test.blobs["label"].data).astype(np.int64)
                hits += int((model(x).argmax(1).numpy() == y).sum())
        model.train()
        return hits / (param.test_iter[0] * test.blobs["data"].shape[0])

    for it in range(max_iter):
        steps = sum(it >= s for s in param.stepvalue)
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * param.gamma ** steps
        train.forward(end=data_layer)
        x = torch.from_numpy(np.array(train.blobs["data"].data))
        y = torch.from_numpy(np.asarray(train.blobs["label"].data).astype(np.int64))
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if it == 0:  # tinycaffe's log prints its own: "Iteration 0 (...), loss = ..."
            print(f"iteration 0: torch train loss {loss.item():.5f}", flush=True)
        done = it + 1
        if done % param.test_interval == 0 or done == max_iter:
            acc = score()
            mine = ours.get(done)
            print(f"iteration {done}: torch test accuracy {acc:.4f}"
                  + (f", tinycaffe's run {mine:.4f} (difference {acc - mine:+.4f})" if mine is not None else "")
                  + f"; train loss {loss.item():.4f}; {time.perf_counter() - start:.0f} s", flush=True)
    solver.close()
    test.close()
    if hasattr(os, "getloadavg"):
        print("load average after: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
