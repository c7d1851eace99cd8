"""Watching a network learn: per-layer activation statistics and per-parameter gradient norms.

    monitor = pnn.Monitor(every=1)
    model.fit(X, y, ..., callbacks=[monitor])
    print(monitor.report())           # a table per recorded epoch
    monitor.plot("monitor.png")

    for name, mean, std in pnn.monitor.activation_stats(model, X[:256]):   # the lecture's printout
        print(f"{name:<12} mean {mean:+.3f}  std {std:.3f}")

Saturated sigmoids show up as activation std near 0 (or means pinned near 0/1), dead ReLU layers
as mean and std 0; vanishing gradients as norms that shrink layer by layer towards the input,
exploding ones as norms that grow. ``Monitor`` warns (``GradientWarning``) the first time a
parameter's gradient norm falls below ``vanish`` (1e-7) or rises above ``explode`` (1e3).
"""

from __future__ import annotations

import math
import warnings

from .callbacks import Callback

__all__ = ["GradientWarning", "Monitor", "activation_stats"]


class GradientWarning(UserWarning):
    """A gradient norm vanished (below ``Monitor.vanish``) or exploded (above ``explode``)."""


def _layer_names(model):
    """``"<index>:<class>"`` for each layer."""
    return [f"{i}:{type(layer).__name__}" for i, layer in enumerate(model.layers)]


def _forward_stats(model, x):
    """Inference forward pass, layer by layer; returns the output and per-layer (mean, std) as
    0-d device arrays."""
    xp = model.xp
    stats = []
    for layer in model.layers:
        x = layer.forward(x, training=False)
        stats.append((xp.mean(x), xp.std(x)))
    return x, stats


def activation_stats(model, x):
    """``[(layer name, mean, std), ...]`` of each layer's output for the batch ``x`` (inference
    mode; ``x`` is host data or an array of the model's backend). Names are ``"<index>:<class>"``."""
    x = model.backend.asarray(x, dtype=model.dtype_name)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (samples, features), got shape {tuple(x.shape)}")
    try:
        _, stats = _forward_stats(model, x)
    finally:
        model.clear_cache()
    return [(name, float(m), float(s)) for name, (m, s) in zip(_layer_names(model), stats)]


class Monitor(Callback):
    """Record activation mean/std per layer and gradient L2 norms per parameter during ``fit``.

    Every ``every`` epochs (at the epoch's end) it runs the fixed sample that ``fit`` provides
    (the first 256 training rows) through the model in inference mode, recording each layer's
    output mean and std, then back-propagates the training loss on that sample and records
    ``‖dL/dθ‖₂`` for each parameter. Inference mode means Dropout is off and BatchNorm uses its
    running statistics: the pass changes nothing in the model (``p.grad`` is put back), and the
    numbers of different epochs are comparable because the sample is always the same.

    ``records``: one dict per recorded epoch: ``{"epoch", "activations": [(name, mean, std)],
    "grad_norms": {parameter name: norm}}``.
    """

    def __init__(self, every=1, vanish=1e-7, explode=1e3):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        for name, value in (("vanish", vanish), ("explode", explode)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        self.every = every
        self.vanish = float(vanish)
        self.explode = float(explode)
        self.records = []
        self._warned = set()

    def on_train_begin(self, logs=None):
        self.records = []
        self._warned = set()

    def on_epoch_end(self, epoch, logs=None):
        if epoch % self.every:
            return
        model = self.model
        x, t, loss = self.params["sample"], self.params["sample_y"], self.params["loss"]
        xp = model.xp
        named = model.named_parameters()
        saved = {k: p.grad for k, p in named.items()}
        # backward may write into the existing gradient arrays (see Parameter): detach them so
        # this pass gets fresh ones and the saved gradients survive it
        for p in named.values():
            p.grad = None
        try:
            out, stats = _forward_stats(model, x)
            loss._forward(xp, out, t)
            model.backward(loss.backward(), need_input_grad=False)
            norms = {k: xp.sqrt(xp.sum(p.grad * p.grad)) for k, p in named.items()
                     if p.grad is not None}
            record = {
                "epoch": epoch,
                "activations": [(name, float(m), float(s))
                                for name, (m, s) in zip(_layer_names(model), stats)],
                "grad_norms": {k: float(v) for k, v in norms.items()},
            }
        finally:
            for k, p in named.items():
                p.grad = saved[k]
            model.clear_cache()
        self.records.append(record)
        self._check(record)

    def _check(self, record):
        """Warn (once per parameter and kind) about vanished or exploding norms."""
        for name, norm in record["grad_norms"].items():
            if norm < self.vanish and (name, "vanish") not in self._warned:
                self._warned.add((name, "vanish"))
                warnings.warn(
                    f"Monitor: the gradient of {name!r} has vanished (norm {norm:.2e} < "
                    f"{self.vanish:g}) at epoch {record['epoch']}: saturated activations or too "
                    "deep a sigmoid/tanh stack? Try ReLU, He initialisation or BatchNorm.",
                    GradientWarning, stacklevel=3,
                )
            elif not norm <= self.explode and (name, "explode") not in self._warned:
                self._warned.add((name, "explode"))
                warnings.warn(
                    f"Monitor: the gradient of {name!r} is exploding (norm {norm:.2e} > "
                    f"{self.explode:g}) at epoch {record['epoch']}: lower the learning rate, "
                    "clip gradients (clipnorm=...) or standardise the inputs.",
                    GradientWarning, stacklevel=3,
                )

    def report(self):
        """The records as a text table: per epoch, each layer's activation mean and std, then
        each parameter's gradient norm."""
        if not self.records:
            return "Monitor: nothing recorded yet (pass it to fit(callbacks=[...]))"
        lines = []
        for rec in self.records:
            width = max(len(n) for n in [*(a[0] for a in rec["activations"]),
                                         *rec["grad_norms"], "layer"])
            lines.append(f"epoch {rec['epoch']}")
            lines.append(f"  {'layer':<{width}}  {'act mean':>10}  {'act std':>10}")
            for name, mean, std in rec["activations"]:
                lines.append(f"  {name:<{width}}  {mean:>10.4g}  {std:>10.4g}")
            lines.append(f"  {'parameter':<{width}}  {'grad norm':>10}")
            for name, norm in rec["grad_norms"].items():
                lines.append(f"  {name:<{width}}  {norm:>10.3e}")
        return "\n".join(lines)

    def plot(self, path=None):
        """Activation std per layer and gradient norm per parameter (log scale) over the
        recorded epochs; returns the matplotlib Figure, written to ``path`` when given."""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ImportError("Monitor.plot needs matplotlib: pip install matplotlib") from None
        if not self.records:
            raise ValueError("Monitor.plot: nothing recorded yet")
        if path is None:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(10, 3.5))
        else:
            from matplotlib.figure import Figure

            fig = Figure(figsize=(10, 3.5))
        ax_act, ax_grad = fig.subplots(1, 2)
        epochs = [r["epoch"] for r in self.records]
        for j, (name, _, _) in enumerate(self.records[0]["activations"]):
            ax_act.plot(epochs, [r["activations"][j][2] for r in self.records], label=name)
        for name in self.records[0]["grad_norms"]:
            # a norm of exactly 0 cannot sit on a log axis; show it at the axis floor
            values = [max(r["grad_norms"].get(name, math.nan), 1e-30) for r in self.records]
            ax_grad.plot(epochs, values, label=name)
        ax_act.set(title="activation std per layer", xlabel="epoch")
        ax_grad.set(title="gradient norm per parameter", xlabel="epoch", yscale="log")
        ax_act.legend(fontsize="small")
        ax_grad.legend(fontsize="small")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig
