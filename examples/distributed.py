"""Data-parallel training on several processes: each rank learns from its share of the digits.

    mpiexec -n 2 python examples/distributed.py                 # two processes on this machine
    mpiexec -n 4 python examples/distributed.py --device cuda   # four GPUs, one rank each (NCCL)
    python examples/distributed.py                              # alone: the same script, 1 rank

scikit-learn's handwritten digits (8x8 images, 1,797 samples; ``--synthetic N`` makes N
MNIST-shaped 28x28 images instead, no scikit-learn needed). Every rank builds the same model from
the same seed; ``model.fit(..., distributed=comm)`` (the one argument that changes) gives each
rank its disjoint share of every epoch's shuffle, averages the gradients of all ranks before
every update (so every rank applies the same step to the same weights) and reduces the loss and
metrics, so every rank's History is the same. With N ranks and ``--batch-size B`` one step sees
N·B rows. Rank 0 reports and (``--save``) writes the model to ``--out``.

``--hand-written`` runs the course's low-level loop instead, with one line changed: the optimizer
is wrapped in ``DistributedOptimizer``. Printed by rank 0: ``ranks: N (mpi)``, one line per
epoch and ``test accuracy: 0.9xxx``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

try:
    import portable_nn as pnn
except ImportError:  # run from a source checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import portable_nn as pnn
from portable_nn import distributed

DEFAULT_OUT = Path(__file__).resolve().parent / "output"


def parse_args(argv):
    """Command-line options (``argv=None`` reads ``sys.argv``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu",
                    help="cpu, cuda (each rank takes cuda:<local rank>), torch:cpu, ...")
    ap.add_argument("--backend", default="auto", choices=["auto", "mpi", "nccl"],
                    help="how the ranks talk: NCCL on GPUs, MPI elsewhere ('auto' picks)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0, help="initial weights and shuffling")
    ap.add_argument("--batch-size", type=int, default=32, help="rows per rank and step")
    ap.add_argument("--learning-rate", type=float, default=2e-3)
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="N synthetic 28x28 images instead of the digits")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder for --save")
    ap.add_argument("--save", action="store_true",
                    help="rank 0 writes the trained model to <out>/distributed.safetensors")
    ap.add_argument("--hand-written", action="store_true",
                    help="the low-level loop with DistributedOptimizer instead of fit")
    return ap.parse_args(argv)


def load(synthetic, seed):
    """``X, y`` on the host: the digits, or ``synthetic`` MNIST-shaped images whose class is a
    bright bar at one of ten heights."""
    if not synthetic:
        return pnn.datasets.load_digits()
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=synthetic)
    X = rng.uniform(0.0, 0.4, size=(synthetic, 28, 28))
    for c in range(10):
        X[y == c, 2 * c + 4:2 * c + 6, 4:24] += 0.6
    return X.reshape(synthetic, -1), y


def device_for(device, comm):
    """One GPU per rank on a node: ``cuda`` becomes ``cuda:<local rank>``."""
    if device in ("cuda", "cupy", "torch:cuda"):
        return f"{device}:{comm.local_rank}"
    return device


def main(argv=None):
    """Train on every rank; return ``{"ranks", "test_accuracy", "losses"}`` (all ranks)."""
    args = parse_args(argv)
    comm = distributed.init(args.backend)
    say = print if comm.is_root else (lambda *a, **k: None)

    X, y = load(args.synthetic, args.seed)  # every rank reads the same data and split
    X_train, X_test, y_train, y_test = pnn.data.train_test_split(X, y, test_size=0.2, seed=0)
    scaler = pnn.data.Standardizer().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    T_train = pnn.data.one_hot(y_train, 10, dtype="float32")

    model = pnn.Sequential(
        pnn.layers.Dense(X.shape[1], 128, init="he"), pnn.layers.ReLU(),
        pnn.layers.Dense(128, 10),
        device=device_for(args.device, comm), dtype="float32", seed=args.seed,
    )
    backend = model.backend
    say(f"ranks: {comm.size} ({comm.kind})  device of rank 0: {model.device}  "
        f"rows per rank: {len(X_train) // comm.size}")
    if args.hand_written:
        losses = hand_written(model, comm, X_train, T_train, args, say)
    else:
        history = model.fit(X_train, y_train, loss="cross_entropy",
                            optimizer=pnn.optimizers.Adam(learning_rate=args.learning_rate),
                            epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                            metrics=["accuracy"], verbose=1 if comm.is_root else 0,
                            distributed=comm)  # the one changed argument
        losses = history.history["loss"]

    logits = backend.to_numpy(model.forward(backend.asarray(X_test, dtype="float32")))
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y_test))
    say(f"test accuracy: {accuracy:.4f}")
    if args.save and comm.is_root:  # one writer: the other ranks hold the same weights
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, "distributed.safetensors")
        pnn.save(model, path)
        say(f"saved {path}")
    return {"ranks": comm.size, "test_accuracy": accuracy, "losses": losses}


def hand_written(model, comm, X_train, T_train, args, say):
    """The course's loop on this rank's share; returns the mean training loss per epoch."""
    backend = model.backend
    loss = pnn.losses.CrossEntropy()
    optimizer = distributed.DistributedOptimizer(
        pnn.optimizers.Adam(learning_rate=args.learning_rate), comm)  # the one changed line
    # equal shards (the last len % size rows of each shuffle sit out that epoch), so every rank
    # takes the same number of steps and every step averages equal batches
    per_rank = len(X_train) // comm.size
    steps = math.ceil(per_rank / args.batch_size)
    losses = []
    for epoch in range(args.epochs):
        order = np.random.default_rng([args.seed, epoch]).permutation(len(X_train))
        mine = order[comm.rank * per_rank:(comm.rank + 1) * per_rank]
        total = 0.0
        for s in range(steps):
            rows = mine[s * args.batch_size:(s + 1) * args.batch_size]
            pred = model.forward(backend.asarray(X_train[rows], dtype="float32"), training=True)
            value = loss.forward(pred, backend.asarray(T_train[rows]))
            model.backward(loss.backward(), need_input_grad=False)
            optimizer.step(model.parameters())
            total += float(value) * len(rows)
        # the mean training loss over all ranks' rows: one sum of two host numbers
        seen_loss, seen_rows = comm.allreduce_sum_host([total, float(len(mine))])
        losses.append(seen_loss / seen_rows)
        say(f"epoch {epoch + 1:3d}: training loss {losses[-1]:.4f}")
    return losses


if __name__ == "__main__":
    main()
