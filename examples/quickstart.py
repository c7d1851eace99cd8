"""Quickstart: an MLP learns scikit-learn's handwritten digits (8x8 images, 1,797 samples).

Standardise the 64 pixel features, train 64-128-10 (ReLU, softmax fused into the cross-entropy)
with Adam, and report the accuracy on a held-out test set. A few seconds on a CPU, no download.

Run:  python examples/quickstart.py [--device cpu] [--epochs 30] [--seed 0] [--out DIR]
Prints ``test accuracy: 0.98xx`` and saves the loss/accuracy curves.
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
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0, help="initial weights and shuffling")
    ap.add_argument("--split-seed", type=int, default=0,
                    help="which 20%% of the digits are held out (fixed, so that runs compare)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=128, help="width of the hidden layer")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the plot")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return ap.parse_args(argv)


def main(argv=None):
    """Train and test; return ``{"test_accuracy", "test_loss", "history", "plot"}``."""
    args = parse_args(argv)
    X, y = pnn.datasets.load_digits()
    X_train, X_test, y_train, y_test = pnn.data.train_test_split(X, y, test_size=0.2,
                                                                 seed=args.split_seed)
    scaler = pnn.data.Standardizer().fit(X_train)  # statistics of the training part only
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

    model = pnn.Sequential(
        pnn.layers.Dense(64, args.hidden, init="he"), pnn.layers.ReLU(),
        pnn.layers.Dense(args.hidden, 10),
        device=args.device, dtype="float32", seed=args.seed,
    )
    history = model.fit(X_train, y_train, loss=pnn.losses.CrossEntropy(),
                        optimizer=pnn.optimizers.Adam(learning_rate=args.learning_rate),
                        epochs=args.epochs, batch_size=args.batch_size, metrics=["accuracy"],
                        verbose=0, seed=args.seed)
    result = model.evaluate(X_test, y_test, metrics=["accuracy"])
    print(f"device: {model.device}  epochs: {args.epochs}  "
          f"final training loss: {history.history['loss'][-1]:.4f}")
    print(f"test accuracy: {result['accuracy']:.4f}")

    plot = None
    if not args.no_plot:
        os.makedirs(args.out, exist_ok=True)
        plot = os.path.join(args.out, "quickstart.png")
        history.plot(plot)
        print(f"saved {plot}")
    return {"test_accuracy": result["accuracy"], "test_loss": result["loss"],
            "history": history.history, "plot": plot}


if __name__ == "__main__":
    main()
