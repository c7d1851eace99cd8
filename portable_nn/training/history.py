"""`History`: what ``fit`` returns, one list per logged quantity, and why training stopped."""

from __future__ import annotations

import os

__all__ = ["History"]


class History:
    """What ``fit`` returns (also ``model.history``).

    ``history`` maps each logged key ("loss", the metrics, "val_loss", "val_<metric>", "lr",
    "time") to its per-epoch list; every key a run will log is there from the start, so a run that
    stops in its first epoch still has ``history["loss"] == []``. ``epoch`` lists the recorded
    epochs (from 0). An epoch interrupted by ``TerminateOnNaN`` is not recorded, so every entry
    describes weights the model really had.

    ``stop_reason`` says why training ended ("completed 20 epochs", or the message of the
    callback that stopped it) and ``stopped_epoch`` / ``stopped_batch`` where (``None`` when it
    ran to the end; ``stopped_batch`` is set only for a stop in the middle of an epoch).
    """

    def __init__(self, keys=()):
        self.history: dict[str, list] = {key: [] for key in keys}
        self.epoch: list[int] = []
        self.stop_reason: str | None = None
        self.stopped_epoch: int | None = None
        self.stopped_batch: int | None = None

    def _append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __len__(self):
        return len(self.epoch)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"

    def _panels(self, keys):
        if keys is None:
            keys = [k for k in self.history if k not in ("lr", "time")]
        elif isinstance(keys, str):
            keys = [keys]
        unknown = [k for k in keys if k not in self.history]
        if unknown:
            raise ValueError(f"keys {unknown} are not in the history; it has {list(self.history)}")
        panels = []
        for k in keys:
            if k.startswith("val_") and k[4:] in keys:
                continue  # drawn in the panel of its training twin
            panels.append([k] + ([f"val_{k}"] if f"val_{k}" in keys else []))
        return panels

    def plot(self, path=None, keys=None):
        """Plot the per-epoch curves, one panel per quantity with its ``val_`` twin; returns the
        matplotlib Figure. ``path``: write the figure there (PNG unless the suffix says
        otherwise). ``keys``: which logged keys to draw (default: all but "lr" and "time")."""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ImportError(
                "History.plot needs matplotlib: pip install matplotlib "
                '(or pip install "portable-nn[examples]")'
            ) from None
        panels = self._panels(keys)
        if not panels or not self.epoch:
            raise ValueError("nothing to plot: the history is empty")
        size = (4.5 * len(panels), 3.5)
        if path is None:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=size)
        else:
            from matplotlib.figure import Figure  # no GUI backend needed to write a file

            fig = Figure(figsize=size)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, panel in zip(axes, panels):
            for key in panel:
                ax.plot(self.epoch, self.history[key], marker="o", markersize=3, label=key)
            ax.set_xlabel("epoch")
            ax.set_title(panel[0])
            ax.legend()
        fig.tight_layout()
        if path is not None:
            suffix = os.path.splitext(os.fspath(path))[1]
            fig.savefig(path, format=None if suffix else "png")
        return fig
