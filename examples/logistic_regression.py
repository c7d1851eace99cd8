"""Logistic regression: a sigmoid on a linear model, trained with cross-entropy, on breast cancer.

The Wisconsin set (569 tumours, 30 measurements; scikit-learn bundles it) spans several orders of
magnitude, so the features are standardised with statistics of the training part. The model is
the course's logistic regression written as a network:

    p = σ(x w + b)            Dense(30, 1) then Sigmoid
    L = −[t log p + (1 − t) log(1 − p)]   BinaryCrossEntropy(from_logits=False)

(Feeding the logit ``z`` to ``BinaryCrossEntropy()`` without the Sigmoid layer is the same model,
computed more stably; ``pnn.estimators.LogisticRegression`` does that for you.)

Run:  python examples/logistic_regression.py [--device cpu] [--epochs 30] [--seed 0] [--out DIR]
Prints ``test accuracy: 0.9xxx`` and the most influential features, saves the learning curves.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

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
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--learning-rate", type=float, default=0.05)
    ap.add_argument("--l2", type=float, default=1e-3, help="L2 penalty rate on the weights")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the plot")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return ap.parse_args(argv)


def main(argv=None):
    """Train and test; return ``{"test_accuracy", "train_accuracy", "weights", "plot"}``."""
    args = parse_args(argv)
    X, y = pnn.datasets.load_breast_cancer()
    X_train, X_test, y_train, y_test = pnn.data.train_test_split(X, y, test_size=0.25,
                                                                 seed=args.seed)
    scaler = pnn.data.Standardizer().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    t_train, t_test = y_train[:, None].astype(np.float64), y_test[:, None].astype(np.float64)

    # a little L2 on the weights (penalty 1e-3 Σ w²) keeps them from growing on separable points
    model = pnn.Sequential(pnn.layers.Dense(30, 1, init="zeros",
                                            regularizer=pnn.regularizers.L2(args.l2)),
                           pnn.layers.Sigmoid(), device=args.device, dtype="float32",
                           seed=args.seed)
    history = model.fit(X_train, t_train, loss=pnn.losses.BinaryCrossEntropy(from_logits=False),
                        optimizer=pnn.optimizers.SGD(learning_rate=args.learning_rate),
                        epochs=args.epochs, batch_size=args.batch_size, metrics=["accuracy"],
                        validation_data=(X_test, t_test), verbose=0, seed=args.seed)
    test = model.evaluate(X_test, t_test, metrics=["accuracy"])
    train = model.evaluate(X_train, t_train, metrics=["accuracy"])
    w = model.backend.to_numpy(model.layers[0].weight.value)[:, 0].astype(np.float64)

    names = _feature_names()
    top = np.argsort(-np.abs(w))[:3]
    print(f"device: {model.device}  epochs: {args.epochs}  "
          f"train accuracy: {train['accuracy']:.4f}")
    print("largest weights (standardised features; > 0 means benign): "
          + ", ".join(f"{names[i]} {w[i]:+.2f}" for i in top))
    print(f"test accuracy: {test['accuracy']:.4f}")

    plot = None
    if not args.no_plot:
        os.makedirs(args.out, exist_ok=True)
        plot = os.path.join(args.out, "logistic_regression.png")
        history.plot(plot, keys=["loss", "val_loss", "accuracy", "val_accuracy"])
        print(f"saved {plot}")
    return {"test_accuracy": test["accuracy"], "train_accuracy": train["accuracy"],
            "weights": w.tolist(), "plot": plot}


def _feature_names():
    """The 30 feature names from scikit-learn (numbered placeholders without it)."""
    try:
        from sklearn.datasets import load_breast_cancer

        return list(load_breast_cancer().feature_names)
    except ImportError:
        return [f"feature {i}" for i in range(30)]


if __name__ == "__main__":
    main()
