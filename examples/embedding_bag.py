"""A bag of embeddings finds which keyword a token sequence repeats most (synthetic, no download).

Each sample is a sequence of ``--length`` tokens from a vocabulary of ``--vocab``; tokens
``1 .. K`` are the K keywords, the others filler. The label is the keyword that occurs most often
in the sequence (each keyword 0 to 3 times, the winner once more than any other, at random
places). Order does not matter, so the average of the tokens' embeddings (a "bag") is enough:

    (N, L) int tokens → Embedding(V, d) (N, L, d) → Permute((2, 1)) (N, d, L)
                      → GlobalAvgPool1D (N, d) → Dense K (softmax fused into the cross-entropy)

The mean embedding is ``Σ_t count_t · e_t / L``, so a linear layer on it can read off the counts
of the keywords once training has made their embeddings distinct from the filler's. Trained with
Adam; reports the accuracy on held-out sequences (above 0.95 with the defaults).

Run:  python examples/embedding_bag.py [--device cpu] [--epochs 30] [--seed 0] [--out DIR]
Prints ``test accuracy: 0.9xxx`` and saves the loss/accuracy curves.
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
    ap.add_argument("--device", default="cpu", help="cpu, cuda, torch:cpu, jax, ...")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0, help="initial weights and shuffling")
    ap.add_argument("--samples", type=int, default=3000, help="sequences (20%% held out)")
    ap.add_argument("--vocab", type=int, default=200, help="tokens, keywords included")
    ap.add_argument("--keywords", type=int, default=4, help="K, the number of classes")
    ap.add_argument("--length", type=int, default=24, help="tokens per sequence")
    ap.add_argument("--dim", type=int, default=16, help="embedding size")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--learning-rate", type=float, default=1e-2)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the plot")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return ap.parse_args(argv)


def keyword_sequences(n, vocab, keywords, length, seed):
    """``(tokens (n, length) int64, labels (n,) int64)``: the label ``k`` is the keyword (token
    ``k + 1``) that occurs most; every other keyword occurs fewer times."""
    if not 0 < keywords < vocab - 1 or length < 4 * keywords:
        raise ValueError(f"need 0 < keywords < vocab - 1 and length >= 4·keywords, got "
                         f"vocab={vocab}, keywords={keywords}, length={length}")
    rng = np.random.default_rng(seed)
    tokens = rng.integers(keywords + 1, vocab, size=(n, length))  # filler (0 is never used)
    labels = rng.integers(0, keywords, size=n)
    counts = rng.integers(0, 4, size=(n, keywords))
    counts[np.arange(n), labels] = counts.max(axis=1) + 1  # the winner, by one or more
    for i in range(n):
        places = rng.permutation(length)
        start = 0
        for k in range(keywords):
            tokens[i, places[start:start + counts[i, k]]] = k + 1
            start += counts[i, k]
    return tokens, labels


def build(device, seed, vocab, dim, keywords):
    """The bag-of-embeddings classifier (float32): integer tokens in, K logits out."""
    L = pnn.layers
    return pnn.Sequential(L.Embedding(vocab, dim), L.Permute((2, 1)), L.GlobalAvgPool1D(),
                          L.Dense(dim, keywords), device=device, dtype="float32", seed=seed)


def main(argv=None):
    """Train and test; return ``{"test_accuracy", "test_loss", "history", "plot"}``."""
    args = parse_args(argv)
    X, y = keyword_sequences(args.samples, args.vocab, args.keywords, args.length, seed=1234)
    X_train, X_test, y_train, y_test = pnn.data.train_test_split(X, y, test_size=0.2, seed=0)
    model = build(args.device, args.seed, args.vocab, args.dim, args.keywords)
    history = model.fit(X_train, y_train, loss=pnn.losses.CrossEntropy(),
                        optimizer=pnn.optimizers.Adam(learning_rate=args.learning_rate),
                        epochs=args.epochs, batch_size=args.batch_size, metrics=["accuracy"],
                        verbose=0, seed=args.seed)
    result = model.evaluate(X_test, y_test, metrics=["accuracy"])
    print(f"device: {model.device}  vocabulary: {args.vocab}  keywords: {args.keywords}  "
          f"final training loss: {history.history['loss'][-1]:.4f}")
    print(f"test accuracy: {result['accuracy']:.4f}")

    plot = None
    if not args.no_plot:
        os.makedirs(args.out, exist_ok=True)
        plot = os.path.join(args.out, "embedding_bag.png")
        history.plot(plot)
        print(f"saved {plot}")
    return {"test_accuracy": result["accuracy"], "test_loss": result["loss"],
            "history": history.history, "plot": plot}


if __name__ == "__main__":
    main()
