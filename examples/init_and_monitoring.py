"""Initialisation and monitoring: why deep nets need Xavier/He and why sigmoids vanish.

Part 1 (the lecture's printout). A 10-layer tanh network gets unit-Gaussian inputs. With "small
random numbers" (normal, std 0.01) every layer multiplies the signal's spread by about
0.01·√width, so the activations of deep layers collapse to 0: their std goes to ~0, and so do the
gradients of the weights below them. With Xavier initialisation (normal, variance 1/fan_in) the
spread stays of order one through all ten layers. ``pnn.monitor.activation_stats`` prints each
layer's mean and std.

Part 2. Ten sigmoid layers against ten ReLU layers (Xavier init for both), trained for a few epochs
with a ``pnn.Monitor`` recording the gradient norm of every weight. σ'(x) ≤ 1/4, so each sigmoid
layer shrinks the backpropagated gradient: the first layer's gradient is orders of magnitude
smaller than the last one's. ReLU passes the gradient through unchanged where it is active.

Run:  python examples/init_and_monitoring.py [--device cpu] [--epochs 3] [--seed 0] [--out DIR]
Prints the per-layer table and ``first-layer gradient norm: sigmoid ..., ReLU ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np

try:
    import portable_nn as pnn
except ImportError:  # run from a source checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import portable_nn as pnn

DEFAULT_OUT = Path(__file__).resolve().parent / "output"
DEPTH = 10


def parse_args(argv):
    """Command-line options (``argv=None`` reads ``sys.argv``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, torch:cpu, array_api_strict, ...")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of part 2's training")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=256, help="units per hidden layer")
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the plot")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return ap.parse_args(argv)


def deep_net(args, n_in, n_out, activation, init):
    """``DEPTH`` hidden layers of ``args.width`` units, then a linear output layer."""
    layers, width = [], n_in
    for _ in range(DEPTH):
        layers += [pnn.layers.Dense(width, args.width, init=init), activation()]
        width = args.width
    layers.append(pnn.layers.Dense(width, n_out, init=init))
    return pnn.Sequential(*layers, device=args.device, dtype="float32", seed=args.seed)


def activations_by_init(args):
    """Part 1: {init name: [(layer, mean, std) for each tanh layer]}."""
    x = np.random.default_rng(args.seed).normal(size=(args.samples, args.width))
    inits = {"small (N(0, 0.01²))": pnn.initializers.Normal(std=0.01),
             "Xavier (N(0, 1/fan_in))": "xavier_fan_in"}
    out = {}
    for name, init in inits.items():
        model = deep_net(args, args.width, args.width, pnn.layers.Tanh, init)
        stats = pnn.monitor.activation_stats(model, x)
        out[name] = [s for s in stats if s[0].endswith("Tanh")]
    return out


def gradients_by_activation(args):
    """Part 2: {activation: {"first", "last", "norms"}} from a Monitor's first record."""
    X, y = pnn.datasets.blobs(args.samples, centers=3, features=16, seed=args.seed)
    X = pnn.data.Standardizer().fit_transform(X)
    out = {}
    for name, act in (("sigmoid", pnn.layers.Sigmoid), ("ReLU", pnn.layers.ReLU)):
        model = deep_net(args, 16, 3, act, "xavier_fan_in")
        monitor = pnn.Monitor(every=1)
        with warnings.catch_warnings():
            # the sigmoid net may trip the Monitor's vanishing-gradient warning: that is the point
            warnings.simplefilter("ignore", pnn.monitor.GradientWarning)
            model.fit(X, y, loss=pnn.losses.CrossEntropy(), optimizer=pnn.optimizers.SGD(0.01),
                      epochs=args.epochs, batch_size=64, verbose=0, seed=args.seed,
                      callbacks=[monitor])
        record = monitor.records[0]
        dense = [f"{i}.weight" for i, layer in enumerate(model.layers)
                 if isinstance(layer, pnn.layers.Dense)]
        norms = [record["grad_norms"][k] for k in dense]
        out[name] = {"first": norms[0], "last": norms[-1], "norms": norms}
    return out


def main(argv=None):
    """Run both parts; return ``{"activations": {...}, "gradients": {...}, "plot"}``."""
    args = parse_args(argv)
    acts = activations_by_init(args)
    print(f"part 1: {DEPTH} tanh layers of {args.width} units, unit-Gaussian input")
    names = list(acts)
    print(f"{'layer':<8}" + "".join(f"{n:>30}" for n in names))
    print(f"{'':<8}" + "".join(f"{'mean':>15}{'std':>15}" for _ in names))
    for i in range(DEPTH):
        row = "".join(f"{acts[n][i][1]:>+15.6f}{acts[n][i][2]:>15.6f}" for n in names)
        print(f"{i + 1:<8}{row}")
    small, xavier = (acts[n][-1][2] for n in names)
    print(f"last-layer activation std: small init {small:.2e}, Xavier {xavier:.3f}")

    grads = gradients_by_activation(args)
    print(f"\npart 2: {DEPTH} hidden layers, gradient norm of each Dense weight (Monitor, epoch 0)")
    for name, g in grads.items():
        print(f"{name:<8} " + " ".join(f"{v:.1e}" for v in g["norms"]))
    print(f"first-layer gradient norm: sigmoid {grads['sigmoid']['first']:.2e}, "
          f"ReLU {grads['ReLU']['first']:.2e}")

    plot = None if args.no_plot else _plot(args.out, acts, grads)
    return {"activations": acts, "gradients": grads, "plot": plot}


def _plot(out, acts, grads):
    """Activation std per layer (part 1) and gradient norm per layer (part 2); the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, stats in acts.items():
        a.plot(range(1, DEPTH + 1), [max(s[2], 1e-30) for s in stats], marker="o", label=name)
    a.set(title="tanh activation std per layer", xlabel="layer", yscale="log")
    a.legend()
    for name, g in grads.items():
        b.plot(range(1, len(g["norms"]) + 1), g["norms"], marker="o", label=name)
    b.set(title="gradient norm per Dense weight", xlabel="layer (1 = input side)", yscale="log")
    b.legend()
    fig.tight_layout()
    path = os.path.join(out, "init_and_monitoring.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"saved {path}")
    return path


if __name__ == "__main__":
    main()
