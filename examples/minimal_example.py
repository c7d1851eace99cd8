"""The course's minimal example: learn ``t = 2x − 3z + 5`` from 1,000 noisy points.

A linear model (one ``Dense(2, 1)``: two weights and a bias) trained by full-batch gradient descent
with the L2 loss, written as the course's low-level loop, step by step:

    pred  = model.forward(x, training=True)      # y = x W + b
    value = loss.forward(pred, t)                # L = ½ Σ (y − t)², averaged over the batch
    model.backward(loss.backward())              # dL/dW = xᵀ (y − t) / n,  dL/db = Σ (y − t) / n
    optimizer.step(model.parameters())           # W ← W − η dL/dW,  b ← b − η dL/db

Run:  python examples/minimal_example.py [--device cpu] [--epochs 200] [--seed 0] [--out DIR]
Prints ``learned weights: [w1, w2] bias: b`` and saves the loss curve and targets-vs-outputs plot.
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
    ap.add_argument("--epochs", type=int, default=200, help="gradient-descent steps (full batch)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--learning-rate", type=float, default=0.04)
    ap.add_argument("--observations", type=int, default=1000)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the plots")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return ap.parse_args(argv)


def main(argv=None):
    """Train the linear model; return ``{"weights", "bias", "loss", "losses", "plot"}``."""
    args = parse_args(argv)
    X, t = pnn.datasets.linear(args.observations, weights=(2.0, -3.0), bias=5.0, noise=1.0,
                               seed=args.seed)

    # init="uniform": the course's small random start, U(-0.05, 0.05)
    model = pnn.Sequential(pnn.layers.Dense(2, 1, init="uniform", bias_init="uniform"),
                           device=args.device, dtype="float32", seed=args.seed)
    loss = pnn.losses.L2()
    optimizer = pnn.optimizers.SGD(learning_rate=args.learning_rate)

    # the whole set fits on the device: move it once, not once per step
    x = model.backend.asarray(X, dtype="float32")
    target = model.backend.asarray(t, dtype="float32")

    values = []
    for _ in range(args.epochs):
        pred = model.forward(x, training=True)
        values.append(loss.forward(pred, target))  # stays on the device until the loop ends
        model.backward(loss.backward(), need_input_grad=False)
        optimizer.step(model.parameters())
    losses = [float(v) for v in values]

    dense = model.layers[0]
    weights = [float(w) for w in model.backend.to_numpy(dense.weight.value)[:, 0]]
    bias = float(model.backend.to_numpy(dense.bias.value)[0])
    final = float(loss.forward(model.forward(x), target))
    print(f"device: {model.device}  epochs: {args.epochs}  final loss: {final:.4f}")
    print(f"learned weights: [{weights[0]:.4f}, {weights[1]:.4f}] bias: {bias:.4f}")

    outputs = model.backend.to_numpy(model.forward(x))
    plot = None if args.no_plot else _plot(args.out, losses, outputs, t)
    return {"weights": weights, "bias": bias, "loss": final, "losses": losses, "plot": plot}


def _plot(out, losses, outputs, targets):
    """Loss per step and outputs against targets; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(losses)
    a.set(xlabel="step", ylabel="L2 loss", yscale="log", title="gradient descent")
    b.scatter(targets[:, 0], outputs[:, 0], s=4)
    b.set(xlabel="target", ylabel="output", title="outputs vs targets (a 45° line is perfect)")
    fig.tight_layout()
    path = os.path.join(out, "minimal_example.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"saved {path}")
    return path


if __name__ == "__main__":
    main()
