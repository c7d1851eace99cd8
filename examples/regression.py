"""Regression on scikit-learn's diabetes set: an MLP against the linear model, R² on held-out data.

442 patients, 10 measurements, target: disease progression after a year. Inputs are standardised
with the training part's statistics; the MLP's targets too (its output layer is linear and Adam's
steps are small, so targets around 150 ± 77 would take many epochs just to reach the right scale).
Both models use the library's scikit-learn style estimators:

- ``LinearRegression``: one Dense layer fitted by full-batch gradient descent (the course's way);
- ``MLPRegressor``: 10-16-1 with tanh, Adam, an L2 penalty (``alpha``) against overfitting 331
  training rows.

On this small, noisy set a hidden layer buys little over the linear model: that is a result too.

Run:  python examples/regression.py [--device cpu] [--epochs 100] [--seed 0] [--out DIR]
Prints ``linear R²: 0.xxxx`` and ``MLP R²: 0.xxxx`` (held-out data) and plots predictions.
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

from portable_nn.estimators import LinearRegression, MLPRegressor

DEFAULT_OUT = Path(__file__).resolve().parent / "output"


def parse_args(argv):
    """Command-line options (``argv=None`` reads ``sys.argv``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, torch:cpu, array_api_strict, ...")
    ap.add_argument("--epochs", type=int, default=100, help="epochs of the MLP")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=10.0, help="the MLP's L2 penalty")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the plot")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return ap.parse_args(argv)


def r2(t, p):
    """Coefficient of determination ``1 − Σ(t − p)² / Σ(t − mean t)²``."""
    return float(1.0 - ((t - p) ** 2).sum() / ((t - t.mean()) ** 2).sum())


def main(argv=None):
    """Fit both models; return ``{"linear_r2", "mlp_r2", "linear_coef", "plot"}``."""
    args = parse_args(argv)
    X, y = pnn.datasets.load_diabetes()
    X_train, X_test, y_train, y_test = pnn.data.train_test_split(X, y, test_size=0.25,
                                                                 seed=args.seed)
    scaler = pnn.data.Standardizer().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    y_scaler = pnn.data.Standardizer().fit(y_train[:, None])

    linear = LinearRegression(device=args.device, random_state=args.seed).fit(X_train, y_train)
    lin_pred = linear.predict(X_test)

    mlp = MLPRegressor(hidden_layer_sizes=(args.hidden,), activation="tanh", alpha=args.alpha,
                       max_epochs=args.epochs, device=args.device, random_state=args.seed)
    mlp.fit(X_train, y_scaler.transform(y_train[:, None])[:, 0])
    mlp_pred = y_scaler.inverse_transform(mlp.predict(X_test)[:, None])[:, 0]

    lin_r2, mlp_r2 = r2(y_test, lin_pred), r2(y_test, mlp_pred)
    print(f"device: {args.device}  linear: {linear.n_iter_} gradient-descent steps  "
          f"MLP: {mlp.n_iter_} epochs")
    print(f"linear R²: {lin_r2:.4f}")
    print(f"MLP R²: {mlp_r2:.4f}")

    plot = None if args.no_plot else _plot(args.out, y_test, lin_pred, mlp_pred, lin_r2, mlp_r2)
    return {"linear_r2": lin_r2, "mlp_r2": mlp_r2, "linear_coef": linear.coef_.tolist(),
            "plot": plot}


def _plot(out, t, lin, mlp, lin_r2, mlp_r2):
    """Predicted against true progression for both models; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for ax, pred, title in [(axes[0], lin, f"linear regression, R² = {lin_r2:.3f}"),
                            (axes[1], mlp, f"MLP, R² = {mlp_r2:.3f}")]:
        ax.scatter(t, pred, s=10)
        ax.plot([t.min(), t.max()], [t.min(), t.max()], "k--", lw=1)
        ax.set(title=title, xlabel="true progression")
    axes[0].set_ylabel("predicted (held-out patients)")
    fig.tight_layout()
    path = os.path.join(out, "regression.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"saved {path}")
    return path


if __name__ == "__main__":
    main()
