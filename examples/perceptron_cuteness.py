"""Is it cute? Size and fur length → cute, learned with Rosenblatt's perceptron rule.

Every animal has a size and a fur length (both 0..10); it is cute when its fur is longer than it is
big. The classes are linearly separable, so the rule ``w ← w + r (C_j − P(x_j)) x_j`` stops making
mistakes after a few epochs, and the learned line ``w₁·size + w₂·fur + b = 0`` separates them.

Run:  python examples/perceptron_cuteness.py [--device cpu] [--epochs 100] [--seed 0] [--out DIR]
Prints ``converged after N epochs, accuracy 1.0000`` and the line, and plots it.
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


def parse_args(argv):
    """Command-line options (``argv=None`` reads ``sys.argv``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, torch:cpu, array_api_strict, ...")
    ap.add_argument("--epochs", type=int, default=100, help="at most this many epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--animals", type=int, default=100)
    ap.add_argument("--learning-rate", type=float, default=0.1)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the plot")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return ap.parse_args(argv)


def main(argv=None):
    """Fit the perceptron; return ``{"converged", "epochs", "errors", "accuracy", "weights",
    "bias", "plot"}``."""
    args = parse_args(argv)
    X, y = pnn.datasets.cuteness(args.animals, seed=args.seed)
    p = pnn.Perceptron(learning_rate=args.learning_rate, max_epochs=args.epochs,
                       device=args.device, seed=args.seed)
    p.fit(X, y)
    acc = p.score(X, y)
    w = [float(v) for v in p.backend.to_numpy(p.weights)]
    b = float(p.backend.to_numpy(p.bias))
    state = "converged" if p.converged_ else "did NOT converge"
    print(f"mistakes per epoch: {p.errors_}")
    print(f"{state} after {p.n_epochs_} epochs, accuracy {acc:.4f}")
    print(f"learned line: {w[0]:+.3f}*size {w[1]:+.3f}*fur {b:+.3f} = 0  (cute above it)")
    plot = None if args.no_plot else _plot(args.out, X, y, w, b)
    return {"converged": p.converged_, "epochs": p.n_epochs_, "errors": p.errors_,
            "accuracy": acc, "weights": w, "bias": b, "plot": plot}


def _plot(out, X, y, w, b):
    """The animals and the learned line ``w1 size + w2 fur + b = 0``; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    os.makedirs(out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(X[y == 1, 0], X[y == 1, 1], marker="o", label="cute")
    ax.scatter(X[y == 0, 0], X[y == 0, 1], marker="x", label="not cute")
    size = np.linspace(0.0, 10.0, 2)
    if abs(w[1]) > 1e-12:  # fur = -(w1 size + b) / w2
        ax.plot(size, -(w[0] * size + b) / w[1], "k-", label="learned line")
    ax.set(xlim=(0, 10), ylim=(0, 10), xlabel="size", ylabel="fur length",
           title="perceptron: is it cute?")
    ax.legend(loc="best", framealpha=0.9)
    path = os.path.join(out, "perceptron_cuteness.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"saved {path}")
    return path


if __name__ == "__main__":
    main()
