"""Optimizers and activations side by side: the same network, data and seed, one thing changed.

The problem: three interleaved spirals (``pnn.datasets.spirals``), which need a hidden layer. The
network: 2-64-64-3 with softmax + cross-entropy. First the activation stays ReLU and the optimizer
changes (plain SGD, SGD with momentum, AdaGrad, RMSprop, Adam, each at a customary learning rate);
then the optimizer stays Adam and the activation changes (sigmoid, tanh, ReLU, leaky ReLU,
softplus). Every run starts from the same initial weights and sees the batches in the same order.

Run:  python examples/optimizers.py [--device cpu] [--epochs 60] [--seed 0] [--out DIR]
Prints a table of final losses and accuracies and plots the loss curves in one figure.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

try:
    import portable_nn as pnn
except ImportError:  # run from a source checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import portable_nn as pnn

DEFAULT_OUT = Path(__file__).resolve().parent / "output"

OPTIMIZERS = {
    "SGD": lambda: pnn.optimizers.SGD(learning_rate=0.1),
    "SGD + momentum": lambda: pnn.optimizers.SGD(learning_rate=0.1, momentum=0.9),
    "AdaGrad": lambda: pnn.optimizers.AdaGrad(learning_rate=0.1),
    "RMSprop": lambda: pnn.optimizers.RMSprop(learning_rate=0.01),
    "Adam": lambda: pnn.optimizers.Adam(learning_rate=0.01),
}
ACTIVATIONS = {
    "sigmoid": pnn.layers.Sigmoid,
    "tanh": pnn.layers.Tanh,
    "ReLU": pnn.layers.ReLU,
    "leaky ReLU": lambda: pnn.layers.LeakyReLU(0.1),
    "softplus": pnn.layers.Softplus,
}


def parse_args(argv):
    """Command-line options (``argv=None`` reads ``sys.argv``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, torch:cpu, array_api_strict, ...")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the plot")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return ap.parse_args(argv)


def train(args, X, y, activation, optimizer):
    """One run: a fresh 2-64-64-3 network from ``args.seed``; returns the History."""
    model = pnn.Sequential(
        pnn.layers.Dense(2, 64), activation(), pnn.layers.Dense(64, 64), activation(),
        pnn.layers.Dense(64, 3), device=args.device, dtype="float32", seed=args.seed,
    )
    return model.fit(X, y, loss=pnn.losses.CrossEntropy(), optimizer=optimizer,
                     epochs=args.epochs, batch_size=32, metrics=["accuracy"], verbose=0,
                     seed=args.seed)


def main(argv=None):
    """Run every comparison; return ``{"optimizers": {name: {"loss", "accuracy", "curve"}},
    "activations": {...}, "plot"}``."""
    args = parse_args(argv)
    X, y = pnn.datasets.spirals(args.samples, classes=3, noise=0.2, seed=args.seed)
    results = {"optimizers": {}, "activations": {}}
    for name, make in OPTIMIZERS.items():
        h = train(args, X, y, pnn.layers.ReLU, make())
        results["optimizers"][name] = _summary(h)
    for name, act in ACTIVATIONS.items():
        h = train(args, X, y, act, pnn.optimizers.Adam(learning_rate=0.01))
        results["activations"][name] = _summary(h)

    print(f"spirals, {args.samples} points, 3 classes, {args.epochs} epochs, device {args.device}")
    for group, fixed in (("optimizers", "ReLU"), ("activations", "Adam")):
        print(f"\n{group[:-1]:<16} final loss  accuracy   (with {fixed})")
        for name, r in results[group].items():
            print(f"{name:<16} {r['loss']:10.4f}  {r['accuracy']:8.4f}")

    results["plot"] = None if args.no_plot else _plot(args.out, results)
    return results


def _summary(history):
    """Final loss, final accuracy and the loss curve of one run."""
    h = history.history
    return {"loss": h["loss"][-1], "accuracy": h["accuracy"][-1], "curve": list(h["loss"])}


def _plot(out, results):
    """Loss curves of both comparisons in one figure; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, group, title in [(axes[0], "optimizers", "optimizers (ReLU)"),
                             (axes[1], "activations", "activations (Adam)")]:
        for name, r in results[group].items():
            ax.plot(range(1, len(r["curve"]) + 1), r["curve"], label=name)
        ax.set(title=title, xlabel="epoch", yscale="log")
        ax.legend()
    axes[0].set_ylabel("training loss (cross-entropy)")
    fig.tight_layout()
    path = os.path.join(out, "optimizers.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"saved {path}")
    return path


if __name__ == "__main__":
    main()
