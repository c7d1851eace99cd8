"""The training loop: ``fit``, ``evaluate``, ``predict``, ``predict_proba``, `History`,
``random_restarts``, and the pieces they are made of (``train_step``, data sources, checks).

``Sequential``'s training methods are these functions, attached here (``model.fit(...)`` is
``fit(model, ...)``), so that nothing in ``layers`` imports the loop.

- ``checks``: every argument and data check, run before anything changes;
- ``sources``: where batches come from (arrays on the device or the host, the user's iterable);
- ``loop``: one training step, the epoch loop with its callbacks, evaluation and prediction;
- ``history``: what fit returns.
"""

from __future__ import annotations

from .checks import LogitsWarning
from .history import History
from .loop import (
    PREDICT_BATCH,
    evaluate,
    fit,
    predict,
    predict_proba,
    random_restarts,
    train_step,
)
from .sources import DEVICE_DATA_LIMIT, ArraySource, Batch, IterableSource

__all__ = [
    "DEVICE_DATA_LIMIT", "PREDICT_BATCH", "ArraySource", "Batch", "History", "IterableSource",
    "LogitsWarning", "evaluate", "fit", "predict", "predict_proba", "random_restarts",
    "train_step",
]


def _attach():
    """The training half of `Sequential`: its ``fit``, ``evaluate``, ``predict`` and
    ``predict_proba`` methods are the functions above (``help(model.fit)`` shows them)."""
    from ..layers.containers import Sequential

    Sequential.fit = fit
    Sequential.evaluate = evaluate
    Sequential.predict = predict
    Sequential.predict_proba = predict_proba


_attach()
