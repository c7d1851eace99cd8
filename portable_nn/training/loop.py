"""``fit``, ``evaluate``, ``predict``, ``predict_proba`` and one training step.

``fit`` is the course's loop, batch after batch (`train_step`)::

    pred = model.forward(xb, training=True)
    value = loss.forward(pred, yb)                       # + model.penalty() when regularized
    model.backward(loss.backward(), need_input_grad=False)
    optimizer.step(model.parameters())

What it adds around it, and why:

- **Validation once.** Every argument and the whole data set are checked up front (shapes,
  numbers in the model's dtype, NaN/Inf rows, labels against the output layer, the loss's own
  ``validate``, weights, callbacks' settings): every problem raises before anything about the
  model changes. Per batch only ``loss._forward`` runs, without checks.
- **Data from a source** (`sources`): arrays moved to the device once when they fit, or batch by
  batch; or the user's own iterable of batches, checked batch by batch.
- **No syncs in the loop.** The epoch's loss and metrics are summed on the device and converted to
  floats once per epoch; the progress bar syncs only when it redraws, ``TerminateOnNaN`` every
  ``check_every`` batches.
- **Reported loss** = data loss + ``model.penalty()``, averaged over the epoch's rows (batch
  losses weighted by their rows, or by their total sample weight). Training metrics are averaged
  the same way over the batches (exact for accuracy, mse and mae; r2 is a batch average);
  validation metrics are computed on all rows at once.
- **Reproducible.** The shuffling comes from a host generator: ``fit(seed=...)``, else the
  model's own stream, seeded by the model's seed and carried by checkpoints, so that save →
  load → fit goes on exactly as an uninterrupted fit would.
- **Data parallel** (``distributed=comm``, see `portable_nn.distributed`): every rank trains on
  its disjoint shard of each epoch and the gradients are averaged before every update.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext

import numpy as np

from ..backends import backend_of, host_rng
from ..callbacks import Callback, TerminateOnNaN
from . import checks
from .history import History
from .sources import ArraySource, IterableSource

__all__ = ["PREDICT_BATCH", "evaluate", "fit", "predict", "predict_proba", "random_restarts",
           "train_step"]

PREDICT_BATCH = 4096              # rows per forward pass when predict/evaluate get no batch_size
SAMPLE_ROWS = 256                 # rows handed to callbacks (Monitor) as a fixed sample


def train_step(model, loss, optimizer, xb, yb, wb=None, *, penalty=None, params=None,
               step_weight=None):
    """One step of gradient descent on the batch ``(xb, yb)`` with row weights ``wb`` (arrays of
    the model's backend); returns ``(loss value, predictions)``, both on the device.

    ``penalty``: ``model.penalty`` when some parameter has a regularizer (its value is added to
    the reported loss; its gradient is in ``p.grad`` already). ``params``: ``model.parameters()``
    (pass it to skip the lookup). ``step_weight``: in a data-parallel step, the factor this
    rank's loss gradient is scaled by before backward, so that the average of the ranks'
    parameter gradients (what a `DistributedOptimizer` takes) is the gradient of the loss over
    the rows of every rank (and synchronized BatchNorm sums consistently scaled gradients).
    """
    xp = model.xp
    pred = model.forward(xb, training=True)
    value = loss._forward(xp, pred, yb) if wb is None else loss._forward(xp, pred, yb, wb)
    if penalty is not None:
        value = value + penalty()
    grad = loss.backward()
    if step_weight is not None and step_weight != 1.0:
        grad = grad * step_weight
    model.backward(grad, need_input_grad=False)
    optimizer.step(model.parameters() if params is None else params)
    return value, pred


def _penalty_fn(model):
    """``model.penalty`` when some learning parameter has a regularizer, else None."""
    if any(p.regularizer is not None and p.trainable for p in model.parameters()):
        return model.penalty
    return None


def _current_lr(optimizer):
    """The rate the next step uses, as a float (None if the optimizer cannot say)."""
    lr = getattr(optimizer, "current_lr", None)
    return float(lr()) if callable(lr) else None


def _is_batch(item):
    """``(x, y)`` / ``(x, y, w)`` of arrays: one batch."""
    return isinstance(item, (list, tuple)) and bool(item) and hasattr(item[0], "shape")


def _is_arraylike(data):
    """Arrays (of any library) and nested lists of numbers are data; anything else iterable (a
    list of ``(x, y)`` batches of arrays, a generator, a DataLoader) is batches."""
    if hasattr(data, "shape"):
        return True
    if isinstance(data, (list, tuple)):
        return not (data and _is_batch(data[0]))
    return False


def _split_count(n, validation_split):
    """Rows kept for training with ``validation_split``: the last ``floor(n · split)`` rows
    validate (not shuffled, as in Keras)."""
    n_train = n - int(n * validation_split + 1e-9)  # 1e-9: 100 · 0.29 is 28.999999999999996
    if n_train < 1 or n - n_train < 1:
        raise ValueError(
            f"validation_split={validation_split} of {n} rows leaves {n_train} for training and "
            f"{n - n_train} for validation; both need at least one row"
        )
    return n_train


def _array_source(model, loss, X, y, sample_weight, class_weight, argname=""):
    """Check X, y and the weights together; returns ``(source, output width)``."""
    Xa, x_dev = checks.features(model, X, f"{argname}X")
    k = checks.output_width(model, Xa, f"{argname}X")
    t, t_dev, t_dtype = checks.targets(model, loss, y, Xa.shape[0], k, f"{argname}y")
    w = checks.sample_weights(sample_weight, class_weight, loss, t, Xa.shape[0], k,
                              f"{argname}sample_weight")
    return ArraySource(model, Xa, x_dev, t, t_dev, t_dtype, w), k


def _source(model, loss, X, y, sample_weight, class_weight, steps, argname=""):
    """A source for arrays or for an iterable of batches (then ``y`` and ``sample_weight`` must
    be left out: they come with each batch)."""
    if _is_arraylike(X):
        if steps is not None:
            raise ValueError(f"{'validation_steps' if argname else 'steps_per_epoch'} is for "
                             "data given as an iterable of batches, not for arrays")
        return _array_source(model, loss, X, y, sample_weight, class_weight, argname)[0]
    name = "validation_data" if argname else "X"
    for value, what in ((y, "y"), (sample_weight, "sample_weight")):
        if value is not None:
            raise ValueError(f"{name} is an iterable of batches, which carry their own {what}: "
                             f"leave {what} out")
    if class_weight == "balanced":
        raise ValueError("class_weight='balanced' needs every label up front: give arrays, or "
                         "a dict {label: weight}")
    source = IterableSource(model, loss, X, steps, name, class_weight)
    source.prepare()
    return source


def _check_batchnorm(model, n, batch_size):
    """BatchNorm cannot estimate a variance from one row: refuse before training, not mid-way."""
    from ..layers.normalization import BatchNorm

    if (batch_size == 1 or n % batch_size == 1) and any(
            isinstance(layer, BatchNorm) and layer.trainable for layer in model.modules()):
        raise ValueError(
            f"with {n} training rows and batch_size={batch_size} a batch of 1 row occurs, which "
            "BatchNorm cannot train on; choose a batch_size that leaves no single row over"
        )


def _check_metrics(model, metric_fns, source):
    """Compute each metric once on a row, so that a metric that cannot work with these targets
    fails before training instead of after the first epoch."""
    if not metric_fns:
        return
    batch = source.first_row()
    if batch is None:
        return
    try:
        pred = model.forward(batch.x, training=False)
    finally:
        model.clear_cache()
    for name, fn, _ in metric_fns:
        try:
            fn(batch.t, pred)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"metric {name!r} cannot be computed for these targets: {exc}") \
                from None


def _evaluate_source(model, source, loss, metric_fns, batch_size, penalty=True):
    """Loss (batch losses weighted by rows or weights, + penalty) and metrics (on all rows) in
    inference mode."""
    xp = model.xp
    total, weight, preds, targets, weights = 0.0, 0.0, [], [], []
    try:
        for batch in source.batches(batch_size):
            pred = model.forward(batch.x, training=False)
            value = loss._forward(xp, pred, batch.t) if batch.w is None else \
                loss._forward(xp, pred, batch.t, batch.w)
            total = total + value * batch.weight
            weight += batch.weight
            if metric_fns:
                preds.append(pred)
                targets.append(batch.t)
                weights.append(batch.w)
    finally:
        model.clear_cache()
    pen = _penalty_fn(model) if penalty else None
    out = {"loss": float(total) / weight + (float(pen()) if pen else 0.0)}
    if metric_fns:
        P = preds[0] if len(preds) == 1 else xp.concat(preds, axis=0)
        T = targets[0] if len(targets) == 1 else xp.concat(targets, axis=0)
        W = None if weights[0] is None else (
            weights[0] if len(weights) == 1 else xp.concat(weights, axis=0))
        for name, fn, _ in metric_fns:
            out[name] = float(checks.metric_value(fn, T, P, W))
    return out


def _shuffle_rng(model, seed):
    """The host generator that shuffles: a fresh one from ``fit(seed=...)``, else the model's own
    stream (seeded by the model's seed, kept across fits and carried by checkpoints)."""
    if seed is not None:
        return host_rng(seed)
    rng = getattr(model, "_fit_rng", None)
    if rng is None:
        rng = model._fit_rng = host_rng(None if model.seed is None else [model.seed, 1])
    return rng


def _reseed_dropout(model, seed):
    """``fit(seed=...)`` fixes the Dropout masks too: each Dropout layer's stream restarts from
    a seed drawn from one generator seeded with ``seed``."""
    gen = host_rng([seed, 2])
    for layer in model.modules():
        reseed = getattr(layer, "reseed", None)
        if callable(reseed):
            reseed(int(gen.integers(2**31)))


def _with_last(batches):
    """``(batch, is the epoch's last)`` pairs: one batch of look-ahead, so that a callback knows
    the last batch of data whose length is unknown (a generator)."""
    it = iter(batches)
    try:
        current = next(it)
    except StopIteration:
        return
    for following in it:
        yield current, False
        current = following
    yield current, True


def _resolve_comm(distributed):
    """The communicator, or None for one process (a one-rank communicator trains as plain fit)."""
    if distributed is None:
        return None
    for attr in ("rank", "size", "allreduce_mean", "broadcast", "agree", "abort"):
        if not hasattr(distributed, attr):
            raise TypeError(f"distributed must be a communicator from "
                            f"portable_nn.distributed.init(), got {type(distributed).__name__}")
    return distributed if distributed.size > 1 else None


# ------------------------------------------------------------------------------------------------
def fit(model, X, y=None, *, loss=None, optimizer=None, epochs=1, batch_size=32, shuffle=True,
        validation_split=0.0, validation_data=None, metrics=None, callbacks=None, verbose="auto",
        seed=None, sample_weight=None, class_weight=None, steps_per_epoch=None,
        validation_steps=None, distributed=None):
    """Train the model on ``X`` and ``y``; returns a `History` (also kept as ``model.history``).

    Data:

    - ``X``: inputs, ``(samples, features)`` or ``(samples, channels, ...)`` (integer indices of
      any shape when the model starts with an ``Embedding``): a NumPy array, a list, or an array
      of any backend. Or, instead of arrays, an iterable of batches ``(x, y)`` / ``(x, y,
      sample_weight)``: a list, a generator function (called once per epoch), a generator
      (``steps_per_epoch`` batches per epoch from one stream), a PyTorch ``DataLoader``; then
      ``y`` and ``sample_weight`` are left out. Host batches are checked and moved to the device
      one at a time, and a helper thread fetches the next one while the current one trains.
    - ``y``: integer class labels ``(n,)`` or one-hot rows for ``CrossEntropy``; targets
      ``(n, outputs)`` otherwise (``(n,)`` when there is one output).
    - ``sample_weight``: one weight per row ``(n,)``: the loss and metrics become weighted means
      ``Σ wᵢ lᵢ / Σ wᵢ`` (as PyTorch's class weights), so integer weights equal repeating rows.
    - ``class_weight``: ``{label: weight}`` (a label left out weighs 1) or ``"balanced"``
      (``n / (classes · count(label))``, scikit-learn's); multiplies ``sample_weight``.
    - ``validation_split``: the last fraction of the rows validates (not shuffled, as Keras);
      ``validation_data=(X_val, y_val)`` or ``(X_val, y_val, w_val)`` or an iterable of batches
      instead (``validation_steps`` batches of a stream).

    Training:

    - ``loss``, ``optimizer``: instances or names ("mse", "cross_entropy", "adam", ...); left
      out, the previous fit's loss and ``model.optimizer`` are used. A loss that takes logits
      after a Sigmoid/Softmax output layer (or the reverse) gets a `LogitsWarning`.
    - ``epochs``; ``batch_size`` (rows per step; per rank in a data-parallel run);
      ``steps_per_epoch`` (for iterables); ``shuffle`` (each epoch, arrays only).
    - ``metrics``: names ("accuracy", "mse", "mae", "r2") or ``fn(y_true, y_pred,
      sample_weight=None) -> 0-d array``; read with the loss's logits convention.
    - ``callbacks``: `Callback` instances; a `TerminateOnNaN` is added unless one is given.
      ``verbose``: 0 silent, 1 a line per epoch, 2 a progress bar on a terminal (a line per epoch
      elsewhere), "auto" a bar on a terminal and silent elsewhere.
    - ``seed``: fixes the shuffling and the Dropout masks of this fit. Left out, the model's own
      generator (seeded by ``Sequential(seed=...)``) goes on, so fits are reproducible from the
      model's seed, and a checkpoint saved between two fits resumes exactly.
    - ``distributed``: a communicator from ``portable_nn.distributed.init()``: data-parallel
      training, each rank on its disjoint shard of every epoch, gradients averaged before every
      update, the History the same on every rank, callbacks that write acting on rank 0.

    Sets ``model.optimizer``, ``model.history`` and ``model.stop_training``. Every check runs
    before training starts: a call that raises leaves the model unchanged.
    """
    comm = _resolve_comm(distributed)
    error, run = None, None
    try:
        run = _FitRun(model, X, y, comm, loss=loss, optimizer=optimizer, epochs=epochs,
                      batch_size=batch_size, shuffle=shuffle, validation_split=validation_split,
                      validation_data=validation_data, metrics=metrics, callbacks=callbacks,
                      verbose=verbose, seed=seed, sample_weight=sample_weight,
                      class_weight=class_weight, steps_per_epoch=steps_per_epoch,
                      validation_steps=validation_steps)
    except (ValueError, TypeError, RuntimeError) as exc:
        if comm is None:
            raise
        error = exc
    if comm is not None:
        comm.agree(error)  # every rank raises with the failing rank's message, or none does
    return run.train()


class _FitRun:
    """One call of ``fit``: ``__init__`` checks everything and changes nothing; ``train`` runs."""

    def __init__(self, model, X, y, comm, *, loss, optimizer, epochs, batch_size, shuffle,
                 validation_split, validation_data, metrics, callbacks, verbose, seed,
                 sample_weight, class_weight, steps_per_epoch, validation_steps):
        self.model, self.comm = model, comm
        self.loss = loss = checks.resolve_loss(model, loss)
        self.optimizer = checks.resolve_optimizer(model, optimizer)
        self.epochs = checks.int_arg(epochs, "epochs", 0)
        self.batch_size = checks.int_arg(batch_size, "batch_size", 1)
        for value, name in ((steps_per_epoch, "steps_per_epoch"),
                            (validation_steps, "validation_steps")):
            if value is not None:
                checks.int_arg(value, name, 1)
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        self.shuffle = shuffle
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
                or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be a number in [0, 1), got "
                             f"{validation_split!r}")
        if seed is not None:
            checks.int_arg(seed, "seed", 0)
        self.seed = seed
        self.metric_fns = checks.resolve_metrics(metrics, loss)
        self.cbs = checks.resolve_callbacks(callbacks, verbose)
        if validation_data is not None and validation_split:
            raise ValueError("pass either validation_split or validation_data, not both")
        checks.warn_logits_convention(model, loss, stacklevel=5)

        train = _source(model, loss, X, y, sample_weight, class_weight, steps_per_epoch)
        val = None
        if validation_split:
            if not isinstance(train, ArraySource):
                raise ValueError("validation_split needs arrays; with an iterable of batches "
                                 "give validation_data")
            train, val = train.split(_split_count(train.n, validation_split))
        elif validation_data is not None:
            val = self._validation_source(validation_data, validation_steps)
        if isinstance(train, IterableSource) and train.one_pass and self.epochs > 1:
            raise ValueError(
                "X is a generator, which can be read once: with epochs > 1 give "
                "steps_per_epoch (batches per epoch from the one stream), or a generator "
                "function (called once per epoch), or a list")
        if isinstance(train, ArraySource):
            self._check_shards(train.n)
        weighted = train.weighted or (val is not None and val.weighted)
        checks.check_metric_weights(self.metric_fns, weighted)
        _check_metrics(model, self.metric_fns, train)
        self.train_source, self.val_source = train, val
        self.steps = train.steps(self.batch_size, 1 if comm is None else comm.size)
        sample_x, sample_y = train.sample(SAMPLE_ROWS)
        self.params = {
            "epochs": self.epochs, "steps": self.steps, "batch_size": self.batch_size,
            "samples": getattr(train, "n", None), "loss": loss, "do_validation": val is not None,
            "metrics": [name for name, _, _ in self.metric_fns], "verbose": verbose,
            "sample": sample_x, "sample_y": sample_y,
            "optimizer": self.optimizer, "rank": 0 if comm is None else comm.rank,
            "world_size": 1 if comm is None else comm.size,
        }
        for cb in self.cbs:
            cb.check(model, self.params)
        if comm is not None and not comm.is_root:
            # callbacks that write files or the terminal act on rank 0 only
            self.cbs = [cb for cb in self.cbs if not getattr(cb, "writes", False)]

    def _check_shards(self, n):
        """Batches that BatchNorm can train on, on every rank; a data-parallel run needs a row
        per rank, and synchronized BatchNorm the same number of steps on every rank."""
        comm, bs = self.comm, self.batch_size
        sizes = {n} if comm is None else {n // comm.size, -(-n // comm.size)}
        if comm is not None and min(sizes) < 1:
            raise ValueError(f"{n} training rows cannot be shared by {comm.size} ranks: each "
                             "needs at least one")
        for rows in sizes:
            _check_batchnorm(self.model, rows, bs)
        synced = any(getattr(layer, "sync", None) is not None for layer in self.model.modules())
        if comm is not None and synced and len({-(-rows // bs) for rows in sizes}) > 1:
            raise ValueError(
                f"with {n} rows on {comm.size} ranks and batch_size={bs} some ranks take one step "
                "more than others, which synchronized BatchNorm cannot do (every rank computes "
                "the statistics together): choose a batch_size that divides the shards alike")

    def _validation_source(self, validation_data, validation_steps):
        model, loss = self.model, self.loss
        pair = isinstance(validation_data, (list, tuple)) and len(validation_data) in (2, 3) \
            and not _is_batch(validation_data[0])
        if not pair and (_is_arraylike(validation_data) or not (
                hasattr(validation_data, "__iter__") or callable(validation_data))):
            raise ValueError("validation_data must be a pair (X_val, y_val), a triple "
                             "(X_val, y_val, sample_weight_val), or an iterable of batches")
        if pair:
            w = validation_data[2] if len(validation_data) == 3 else None
            return _source(model, loss, validation_data[0], validation_data[1], w, None,
                           validation_steps, argname="validation ")
        return _source(model, loss, validation_data, None, None, None, validation_steps,
                       argname="validation ")

    def _history_keys(self):
        names = ["loss", *(name for name, _, _ in self.metric_fns)]
        keys = list(names)
        if self.val_source is not None:
            keys += [f"val_{name}" for name in names]
        if _current_lr(self.optimizer) is not None:
            keys.append("lr")
        return [*keys, "time"]

    # ---- from here on the model changes ----
    def train(self):
        model, comm, optimizer, cbs = self.model, self.comm, self.optimizer, self.cbs
        model.optimizer = optimizer
        model.stop_training = False
        model.stop_reason = None
        model._fit_loss, model._fit_metrics = self.loss, self.metric_fns
        history = model.history = History(self._history_keys())
        # data-parallel: each step averages the ranks' gradients (packed), then steps
        self.stepper = optimizer
        if comm is not None:
            from ..distributed import DistributedOptimizer

            self.stepper = DistributedOptimizer(optimizer, comm)
        if self.seed is not None:
            _reseed_dropout(model, self.seed)
        self.rng = _shuffle_rng(model, self.seed)
        for cb in cbs:
            cb.set_model(model)
            cb.set_params(self.params)
        self.batch_cbs = [cb for cb in cbs if type(cb).on_batch_end is not Callback.on_batch_end]
        self.penalty = _penalty_fn(model)
        # a diverging run overflows on purpose; TerminateOnNaN reports it instead of NumPy
        guard = any(isinstance(cb, TerminateOnNaN) for cb in cbs)
        quiet = np.errstate(over="ignore", invalid="ignore", divide="ignore") if guard \
            else nullcontext()
        started = []  # callbacks whose on_train_begin ran get their on_train_end, whatever happens
        with quiet, model.backend.device_context():
            try:
                if comm is not None:
                    self._broadcast_state()
                for cb in cbs:
                    cb.on_train_begin()
                    started.append(cb)
                for epoch in range(self.epochs):
                    if not self._epoch(epoch, history):
                        break
                else:
                    history.stop_reason = f"completed {self.epochs} epochs"
            except BaseException as exc:
                if comm is not None and not isinstance(exc, KeyboardInterrupt):
                    comm.abort(f"{type(exc).__name__}: {exc}")  # ends every rank, not a hang
                raise
            finally:
                model.clear_cache()
                for cb in started:
                    cb.on_train_end()
        return history

    def _broadcast_state(self):
        """Every rank starts from rank 0's parameters and buffers, and draws its own Dropout
        masks (rank 0 keeps its stream; rank r > 0 restarts from a seed derived from it and r)."""
        model = self.model
        if self.comm.rank > 0:
            for layer in model.modules():
                state = layer.rng_state()
                if state is not None and hasattr(layer, "reseed"):
                    derived = host_rng([state["seed"], state["calls"], self.comm.rank])
                    layer.reseed(int(derived.integers(2**31)))
        params = model.parameters()
        buffers = model.named_buffers()
        values = self.comm.broadcast([p.value for p in params] + list(buffers.values()), root=0)
        for p, v in zip(params, values):
            p.value = v
        for name, v in zip(buffers, values[len(params):]):
            model.set_buffer(name, v)

    def _step_weight(self, batch, total):
        """For a data-parallel step: the factor that makes the average of the ranks' scaled
        gradients the gradient of the loss over all the step's rows."""
        size = self.comm.size
        if self.loss.reduction == "sum":
            return float(size)
        return 0.0 if total == 0 else size * batch.weight / total

    def _epoch(self, epoch, history):
        """One epoch; returns False when training must stop."""
        model, optimizer, loss, comm = self.model, self.stepper, self.loss, self.comm
        xp, params = model.xp, model.parameters()
        t0 = time.perf_counter()
        for cb in self.cbs:
            cb.on_epoch_begin(epoch)
        lr = _current_lr(optimizer)
        source = self.train_source
        perm = None
        if isinstance(source, ArraySource) and self.shuffle:
            perm = self.rng.permutation(source.n)
        shard = None if comm is None else (comm.rank, comm.size)
        totals = None
        if shard is not None and isinstance(source, ArraySource):
            totals = source.step_totals(self.batch_size, perm, comm.size)
        metric_fns, batch_cbs, penalty = self.metric_fns, self.batch_cbs, self.penalty
        sums = {"loss": 0.0, **{name: 0.0 for name, _, _ in metric_fns}}
        seen, weight_seen = 0, 0.0
        for b, (batch, last) in enumerate(_with_last(source.batches(self.batch_size, perm,
                                                                   shard))):
            step_weight = None if shard is None else \
                self._step_weight(batch, self._step_total(totals, b, batch))
            if batch.rows == 0:
                # this rank's shard is used up; it still takes part in the step's average
                for p in params:
                    p.grad = xp.zeros_like(p.value) if p.trainable else None
                optimizer.step(params)
                continue
            value, pred = train_step(model, loss, optimizer, batch.x, batch.t, batch.w,
                                     penalty=penalty, params=params, step_weight=step_weight)
            seen += batch.rows
            weight_seen += batch.weight
            sums["loss"] = sums["loss"] + value * batch.weight
            for name, fn, _ in metric_fns:
                sums[name] = sums[name] + checks.metric_value(fn, batch.t, pred, batch.w) \
                    * batch.weight
            if batch_cbs:
                logs = {"loss": value, "size": batch.rows, "seen": seen, "sums": sums,
                        "weight_seen": weight_seen, "last": last}
                for cb in batch_cbs:
                    cb.on_batch_end(b, logs)
                if model.stop_training:
                    history.stopped_epoch, history.stopped_batch = epoch, b
                    history.stop_reason = model.stop_reason or \
                        f"a callback set model.stop_training at epoch {epoch}, batch {b}"
                    return False
        logs = self._epoch_logs(sums, weight_seen)
        if self.val_source is not None:
            vlogs = _evaluate_source(model, self.val_source, loss, self.metric_fns,
                                     self.batch_size)
            logs.update({f"val_{key}": v for key, v in vlogs.items()})
        if lr is not None:
            logs["lr"] = lr
        logs["time"] = time.perf_counter() - t0
        history._append(epoch, logs)
        for cb in self.cbs:
            cb.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            history.stopped_epoch = epoch
            history.stop_reason = model.stop_reason or \
                f"a callback set model.stop_training after epoch {epoch}"
            return False
        return True

    def _step_total(self, totals, step, batch):
        """The total weight of the rows every rank trains on in this step: known to every rank
        for arrays (all ranks hold the weights and the permutation), one small allreduce for
        the user's own batches."""
        if totals is not None:
            return totals[step]
        b = self.model.backend
        (mean,) = self.comm.allreduce_mean([b.asarray([batch.weight],
                                                      dtype=self.model.dtype_name)])
        return float(b.to_numpy(mean)[0]) * self.comm.size

    def _epoch_logs(self, sums, weight_seen):
        """The epoch's averages (over every rank in a data-parallel run)."""
        keys = list(sums)
        values = [float(sums[k]) for k in keys]
        if self.comm is not None and self.comm.size > 1:
            b = self.model.backend
            packed = b.asarray([*values, weight_seen], dtype=self.model.dtype_name)
            (mean,) = self.comm.allreduce_mean([packed])
            mean = [float(v) for v in b.to_numpy(mean)]
            values, weight_seen = mean[:-1], mean[-1]
        return {k: v / weight_seen for k, v in zip(keys, values)}


# ------------------------------------------------------------------------------------------------
def evaluate(model, X, y=None, *, loss=None, metrics=None, batch_size=None, sample_weight=None,
             steps=None):
    """The loss and metrics of the model on ``X``, ``y`` in inference mode (Dropout off,
    BatchNorm on its running statistics): ``{"loss": float, <metric>: float, ...}``.

    ``loss`` / ``metrics``: as in ``fit``; left out, those of the last ``fit`` (a loaded
    checkpoint's loss counts). The loss includes ``model.penalty()``, like fit's. ``X`` may be an
    iterable of ``(x, y)`` / ``(x, y, w)`` batches (``steps``: at most that many), as in fit.
    ``sample_weight``: one weight per row; the loss and metrics are weighted means.
    ``batch_size``: rows per forward pass (default 4096), which bounds device memory.
    """
    loss = checks.resolve_loss(model, loss)
    metric_fns = (getattr(model, "_fit_metrics", None) or []) if metrics is None \
        else checks.resolve_metrics(metrics, loss)
    batch_size = PREDICT_BATCH if batch_size is None else checks.int_arg(batch_size,
                                                                          "batch_size", 1)
    if steps is not None:
        checks.int_arg(steps, "steps", 1)
    checks.warn_logits_convention(model, loss, stacklevel=3)
    with model.backend.device_context():
        source = _source(model, loss, X, y, sample_weight, None, steps)
        checks.check_metric_weights(metric_fns, source.weighted)
        _check_metrics(model, metric_fns, source)
        return _evaluate_source(model, source, loss, metric_fns, batch_size)


def _outputs(model, X, batch_size):
    """``(outputs on the device, X was on the device)`` for ``X`` in inference mode."""
    batch_size = PREDICT_BATCH if batch_size is None else checks.int_arg(batch_size,
                                                                          "batch_size", 1)
    Xa, x_dev = checks.features(model, X, "X")
    b = model.backend
    dtype = checks.input_dtype(model)
    outs = []
    with b.device_context():
        try:
            for start in range(0, Xa.shape[0], batch_size):
                stop = min(Xa.shape[0], start + batch_size)  # strict refuses out-of-range stops
                xb = b.asarray(Xa[start:stop, ...], dtype=dtype)
                try:
                    outs.append(model.forward(xb, training=False))
                except ValueError as exc:
                    raise ValueError(f"X does not fit the model: {exc}") from None
        finally:
            model.clear_cache()
        return (outs[0] if len(outs) == 1 else model.xp.concat(outs, axis=0)), x_dev


def _answer_like(model, X, out, x_dev):
    """The output in the caller's kind of array: NumPy for host data, X's backend otherwise."""
    b = model.backend
    if x_dev:
        return out
    if isinstance(X, (list, tuple, np.ndarray)):
        return b.to_numpy(out)
    try:
        return backend_of(X).asarray(out)
    except TypeError:  # array-likes of no known backend (pandas, ...) get NumPy
        return b.to_numpy(out)


def predict(model, X, batch_size=None):
    """The model's raw outputs for ``X`` in inference mode (Dropout off, BatchNorm on its running
    statistics): logits for a classifier trained with a logits loss (use ``predict_proba`` for
    probabilities), values for a regressor.

    The output follows the input: NumPy arrays or lists give a NumPy array; an array of the
    model's backend gives one of the same backend; another backend's array is answered in kind.
    ``batch_size``: rows per forward pass (default 4096).
    """
    out, x_dev = _outputs(model, X, batch_size)
    return _answer_like(model, X, out, x_dev)


def predict_proba(model, X, batch_size=None):
    """Class probabilities for ``X`` (rows of a softmax, or one sigmoid probability per output),
    in inference mode, following the input's kind of array as ``predict`` does.

    - A model that ends with a ``Softmax`` or ``Sigmoid`` layer: its outputs, as they are.
    - A model trained with a loss that takes logits (``CrossEntropy()``,
      ``BinaryCrossEntropy()``, the defaults): the softmax / sigmoid of its outputs.
    - A regression model (trained with MSE, L2, ...), or one never trained that does not end
      with Softmax/Sigmoid: a ``TypeError``, since its outputs are not scores of classes.
    """
    from ..layers import Sigmoid, Softmax

    last = checks.last_leaf(model)
    loss = getattr(model, "_fit_loss", None)
    if not isinstance(last, (Sigmoid, Softmax)):
        if loss is None:
            raise TypeError(
                "predict_proba: the model was not trained (no loss is known) and does not end "
                "with Softmax or Sigmoid, so its outputs cannot be read as probabilities; "
                "train it with a classification loss, or use predict for raw outputs")
        to_proba = getattr(loss, "probabilities", None)
        if not callable(to_proba):
            raise TypeError(f"predict_proba: the model was trained with {type(loss).__name__}, "
                            "which does not define probabilities; use predict")
        out, x_dev = _outputs(model, X, batch_size)
        return _answer_like(model, X, to_proba(model.xp, out), x_dev)
    out, x_dev = _outputs(model, X, batch_size)
    return _answer_like(model, X, out, x_dev)


# ------------------------------------------------------------------------------------------------
def random_restarts(build, X, y, *, seeds, **fit_kwargs):
    """Train one model per seed and keep the best: ``(best_model, results)``.

    ``build(seed)`` returns a fresh model; each is trained with ``fit(model, X, y, seed=seed,
    **fit_kwargs)`` (``seed`` in fit_kwargs overrides the shuffling seed). The best has the lowest
    validation loss of the weights it ends with (after any EarlyStopping restore), so a validation
    split or validation data is required. ``results``: one dict per seed, in order, with "seed",
    "val_loss" and "history".
    """
    from .. import optimizers

    if not callable(build):
        raise TypeError(f"build must be a callable seed -> model, got {type(build).__name__}")
    seeds = list(seeds) if not isinstance(seeds, (str, bytes)) else None
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints, got {seeds!r}")
    split = fit_kwargs.get("validation_split", 0.0)
    vdata = fit_kwargs.get("validation_data")
    if vdata is None and not split:
        raise ValueError("random_restarts picks the best model by validation loss: pass "
                         "validation_split=... or validation_data=(X_val, y_val)")
    if vdata is None:
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        n_train = _split_count(n, split)
        tail = [np.asarray(a) if isinstance(a, (list, tuple)) else a for a in (X, y)]
        vdata = (tail[0][n_train:, ...], tail[1][n_train:, ...])
    results, best, best_key = [], None, None
    for seed in seeds:
        model = build(int(seed))
        kwargs = {"seed": int(seed), **fit_kwargs}
        if isinstance(kwargs.get("optimizer"), optimizers.Optimizer):
            # a fresh copy per restart: a shared one would carry Adam's step count, moments and
            # schedule position from one run into the next
            opt = kwargs["optimizer"]
            kwargs["optimizer"] = optimizers.from_config(
                {"class": type(opt).__name__, "config": opt.get_config()})
        history = fit(model, X, y, **kwargs)
        val_loss = evaluate(model, vdata[0], vdata[1], metrics=[],
                            batch_size=kwargs.get("batch_size", 32))["loss"]
        results.append({"seed": int(seed), "val_loss": val_loss, "history": history})
        key = (math.isnan(val_loss), val_loss)
        if best is None or key < best_key:
            best, best_key = model, key
    return best, results


