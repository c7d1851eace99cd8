"""A residual MLP separates three interleaved spirals (synthetic, 2-D, no download).

Each block adds a correction to its input, ``x + f(x)`` (He et al. 2016), with ``f`` a pre-norm
two-layer MLP (``LayerNorm → Dense → GELU → Dense``, as in transformer blocks), so that the
identity path carries both the signal forward and the gradient back through a deep stack:

    (N, 2) → Dense 32 → [Residual(LayerNorm, Dense 32, GELU, Dense 32)] × 3 → LayerNorm
           → Dense 3 (softmax fused into the cross-entropy)

trained with AdamW and a cosine learning-rate decay; reports the accuracy on held-out points
(above 0.99 with the defaults). A few seconds on a CPU.

Run:  python examples/residual_mlp.py [--device cpu] [--epochs 40] [--blocks 3] [--seed 0]
Prints ``test accuracy: 0.9xxx`` and saves the loss/accuracy curves.
"""

from __future__ import annotations

import argparse
import math
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
    ap.add_argument("--device", default="cpu", help="cpu, cuda, torch:cpu, jax, ...")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0, help="initial weights and shuffling")
    ap.add_argument("--samples", type=int, default=900, help="points on the three arms")
    ap.add_argument("--noise", type=float, default=0.1, help="angular jitter (radians)")
    ap.add_argument("--blocks", type=int, default=3, help="residual blocks")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--learning-rate", type=float, default=3e-3,
                    help="the first step's; it decays to 0 along a cosine over the run")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the plot")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return ap.parse_args(argv)


def build(device, seed, blocks, width):
    """The residual MLP (float32): 2 coordinates in, 3 logits out."""
    L = pnn.layers
    body = [L.Residual(L.LayerNorm(width), L.Dense(width, width, init="he"), L.GELU(),
                       L.Dense(width, width, init="zeros"))  # each block starts as the identity
            for _ in range(blocks)]
    return pnn.Sequential(L.Dense(2, width), *body, L.LayerNorm(width), L.Dense(width, 3),
                          device=device, dtype="float32", seed=seed)


def main(argv=None):
    """Train and test; return ``{"test_accuracy", "test_loss", "history", "plot"}``."""
    args = parse_args(argv)
    X, y = pnn.datasets.spirals(args.samples, classes=3, noise=args.noise, seed=1234)
    X_train, X_test, y_train, y_test = pnn.data.train_test_split(X, y, test_size=0.2, seed=0)
    model = build(args.device, args.seed, args.blocks, args.width)
    steps = math.ceil(X_train.shape[0] / args.batch_size) * args.epochs
    schedule = pnn.schedules.CosineDecay(args.learning_rate, steps)  # settles at the end
    history = model.fit(X_train, y_train, loss=pnn.losses.CrossEntropy(),
                        optimizer=pnn.optimizers.AdamW(learning_rate=schedule,
                                                       weight_decay=1e-4),
                        epochs=args.epochs, batch_size=args.batch_size, metrics=["accuracy"],
                        verbose=0, seed=args.seed)
    result = model.evaluate(X_test, y_test, metrics=["accuracy"])
    print(f"device: {model.device}  blocks: {args.blocks}  parameters: "
          f"{model.num_parameters():,}  final training loss: {history.history['loss'][-1]:.4f}")
    print(f"test accuracy: {result['accuracy']:.4f}")

    plot = None
    if not args.no_plot:
        os.makedirs(args.out, exist_ok=True)
        plot = os.path.join(args.out, "residual_mlp.png")
        history.plot(plot)
        print(f"saved {plot}")
    return {"test_accuracy": result["accuracy"], "test_loss": result["loss"],
            "history": history.history, "plot": plot}


if __name__ == "__main__":
    main()
