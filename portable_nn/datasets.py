"""Data sets for the course's examples: small synthetic ones, scikit-learn's bundled ones, MNIST.

Everything here is host data: functions return ``(X, y)`` as NumPy arrays (``X`` float64 of shape
(n, features); ``y`` int64 class labels, or float64 targets for regression). Hand them to
``model.fit`` or ``backend.asarray``.

=======================  ==========================================================================
``xor()``                the four points of XOR (not linearly separable)
``spirals(n, ...)``      interleaved spirals, one arm per class (the CS231n toy set)
``blobs(n, ...)``        Gaussian clusters around random or given centres
``linear(n, ...)``       the minimal example: ``t = 2x − 3z + 5 + noise``
``cuteness(n, ...)``     size and fur length → cute (linearly separable, with a margin)
``load_digits()`` ...    thin wrappers over scikit-learn's bundled sets (the ``examples`` extra)
``read_idx(path)``       the IDX format of MNIST (gzip or not, detected from the magic bytes)
``write_idx(path, a)``   the inverse, for tests and for writing your own small sets
``load_mnist(dir)``      MNIST's two IDX files of one split
=======================  ==========================================================================
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

__all__ = [
    "blobs", "cuteness", "linear", "load_breast_cancer", "load_diabetes", "load_digits",
    "load_mnist", "read_idx", "spirals", "write_idx", "xor",
]


# argument checks ------------------------------------------------------------------------------
def _int_arg(value, name, minimum):
    """``value`` as an int >= ``minimum``, or an error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _float_arg(value, name, minimum=None):
    """``value`` as a finite float (>= ``minimum`` if given), or an error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return value


def _seed_arg(seed):
    """A host generator from an int seed or None."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    return np.random.default_rng(seed)


# synthetic sets -------------------------------------------------------------------------------
def xor():
    """The XOR truth table: ``X`` = [[0, 0], [0, 1], [1, 0], [1, 1]], ``y`` = [0, 1, 1, 0].

    No line separates the two classes, so a single perceptron cannot learn it; one hidden layer of
    two units can.
    """
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return X, y


def _split_evenly(n, k):
    """Sizes of ``k`` groups that add up to ``n`` (the first ``n % k`` get one more)."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def spirals(n=300, classes=3, noise=0.2, seed=None):
    """``n`` points in total on ``classes`` interleaved spiral arms in 2-D, one arm per class.

    Arm ``c`` runs from the origin (radius 0) to radius 1 while its angle turns by 4 radians from
    ``c · 2π / classes``; ``noise`` is the standard deviation (in radians) of Gaussian jitter added
    to the angle. Not linearly separable: a hidden layer is needed.
    """
    n = _int_arg(n, "n", 1)
    classes = _int_arg(classes, "classes", 2)
    noise = _float_arg(noise, "noise", 0.0)
    rng = _seed_arg(seed)
    xs, ys = [], []
    for c, size in enumerate(_split_evenly(n, classes)):
        r = np.linspace(0.0, 1.0, size)
        theta = np.linspace(0.0, 4.0, size) + c * 2.0 * math.pi / classes
        theta = theta + rng.normal(0.0, noise, size) if noise > 0 else theta
        xs.append(np.column_stack([r * np.sin(theta), r * np.cos(theta)]))
        ys.append(np.full(size, c, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def blobs(n=300, centers=3, features=2, std=1.0, seed=None, box=(-10.0, 10.0)):
    """``n`` points in isotropic Gaussian clusters (standard deviation ``std``), as evenly shared
    between the clusters as possible; ``y`` is the cluster index.

    ``centers``: how many clusters (centres drawn uniformly in ``box`` per coordinate), or an array
    of shape (clusters, features) of given centres (then ``features`` is taken from it).
    """
    n = _int_arg(n, "n", 1)
    std = _float_arg(std, "std", 0.0)
    rng = _seed_arg(seed)
    if isinstance(centers, (int, np.integer)) and not isinstance(centers, bool):
        k = _int_arg(centers, "centers", 1)
        d = _int_arg(features, "features", 1)
        if len(box) != 2 or not box[0] < box[1]:
            raise ValueError(f"box must be (low, high) with low < high, got {box!r}")
        c = rng.uniform(float(box[0]), float(box[1]), size=(k, d))
    else:
        c = np.asarray(centers, dtype=np.float64)
        if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1 or not np.all(np.isfinite(c)):
            raise ValueError(
                f"centers must be an int or a finite array of shape (clusters, features), got "
                f"shape {c.shape}"
            )
    xs, ys = [], []
    for i, size in enumerate(_split_evenly(n, c.shape[0])):
        xs.append(c[i] + rng.normal(0.0, std, size=(size, c.shape[1])))
        ys.append(np.full(size, i, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def linear(n=1000, weights=(2.0, -3.0), bias=5.0, noise=1.0, seed=None, low=-10.0, high=10.0):
    """The course's minimal example: inputs uniform in [low, high], targets
    ``t = X @ weights + bias + u`` with ``u`` uniform in [−noise, noise].

    With the defaults that is ``t = 2x − 3z + 5 + noise``. Returns ``X`` (n, len(weights)) and
    ``y`` of shape (n, 1): a regression target with one output, ready for ``Dense(k, 1)``.
    """
    n = _int_arg(n, "n", 1)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size < 1 or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be a non-empty 1-D sequence of finite numbers, got "
                         f"{weights!r}")
    bias = _float_arg(bias, "bias")
    noise = _float_arg(noise, "noise", 0.0)
    low, high = _float_arg(low, "low"), _float_arg(high, "high")
    if not low < high:
        raise ValueError(f"linear needs low < high, got low={low}, high={high}")
    rng = _seed_arg(seed)
    X = rng.uniform(low, high, size=(n, w.size))
    u = rng.uniform(-noise, noise, size=n) if noise > 0 else np.zeros(n)
    y = X @ w + bias + u
    return X, y[:, None]


def cuteness(n=100, seed=None, margin=0.5):
    """A linearly separable toy for the perceptron: animals with a ``size`` and a ``fur`` length
    (columns 0 and 1, both in [0, 10]); an animal is cute (``y = 1``) when its fur is longer than
    it is big, ``fur − size > 0``.

    Points closer than ``margin`` to the line ``fur = size`` are redrawn, so the perceptron rule
    provably converges (Novikoff: at most (R / γ)² mistakes).
    """
    n = _int_arg(n, "n", 2)
    margin = _float_arg(margin, "margin", 0.0)
    if margin >= 3.0:
        raise ValueError(f"margin must be < 3 (the square [0, 10]² would be nearly empty), got "
                         f"{margin}")
    rng = _seed_arg(seed)
    rows = []
    while sum(len(r) for r in rows) < n:
        cand = rng.uniform(0.0, 10.0, size=(2 * n, 2))
        # signed distance to the line fur = size is (fur - size) / sqrt(2)
        keep = np.abs(cand[:, 1] - cand[:, 0]) / math.sqrt(2.0) >= margin
        rows.append(cand[keep])
    X = np.concatenate(rows)[:n]
    y = (X[:, 1] > X[:, 0]).astype(np.int64)
    if y.min() == y.max():  # a tiny n can draw one class only; make sure both occur
        X[0] = [2.0, 8.0]
        X[1] = [8.0, 2.0]
        y[0], y[1] = 1, 0
    return X, y


# scikit-learn's bundled sets ------------------------------------------------------------------
def _sklearn_datasets():
    """``sklearn.datasets``, or an ImportError that names the ``examples`` extra."""
    try:
        from sklearn import datasets as skd
    except ImportError:
        raise ImportError(
            "this data set comes bundled with scikit-learn, which is not installed: "
            'pip install "portable-nn[examples]" (or pip install scikit-learn)'
        ) from None
    return skd


def load_digits():
    """scikit-learn's handwritten digits: ``X`` (1797, 64) pixel values 0..16 (8x8 images,
    flattened), ``y`` labels 0..9. Bundled with scikit-learn: no download."""
    X, y = _sklearn_datasets().load_digits(return_X_y=True)
    return X.astype(np.float64), y.astype(np.int64)


def load_breast_cancer():
    """scikit-learn's Wisconsin breast cancer set: ``X`` (569, 30) features, ``y`` 0 (malignant)
    or 1 (benign). Features span several orders of magnitude: standardise them."""
    X, y = _sklearn_datasets().load_breast_cancer(return_X_y=True)
    return X.astype(np.float64), y.astype(np.int64)


def load_diabetes():
    """scikit-learn's diabetes regression set: ``X`` (442, 10) (already centred and scaled),
    ``y`` disease progression after one year (float, 25..346)."""
    X, y = _sklearn_datasets().load_diabetes(return_X_y=True)
    return X.astype(np.float64), y.astype(np.float64)


# IDX (MNIST) files ----------------------------------------------------------------------------
# type code -> big-endian dtype, as in the format's description on Yann LeCun's MNIST page
_IDX_TYPES = {
    0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.name: code for code, dt in _IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path):
    """The file's bytes, decompressed when they start with the gzip magic (whatever the name)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"IDX file {path!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"IDX file {path!r} is a directory, not a file")
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"IDX file {path!r} starts like gzip but cannot be decompressed "
                             f"(truncated or corrupt): {exc}") from None
    return path, raw


def read_idx(path):
    """Read an IDX file (the format of MNIST) into a NumPy array in native byte order.

    Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian
    uint32, then the data, big-endian, row-major. A gzip-compressed file is recognised by its
    first two bytes, not by its name. A missing file raises ``FileNotFoundError``; a bad magic
    number, an unknown type code, or a header or data that is too short or too long raises
    ``ValueError`` naming the file.
    """
    path, raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"IDX file {path!r} is truncated: {len(raw)} bytes, the header alone "
                         "needs 4")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"IDX file {path!r} has a bad magic number {raw[:4].hex()}: an IDX file "
                         "starts with two zero bytes (e.g. 00000803 for MNIST images)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        known = ", ".join(f"0x{c:02X} ({dt.name})" for c, dt in _IDX_TYPES.items())
        raise ValueError(f"IDX file {path!r} has an unknown data type code 0x{code:02X}; "
                         f"known codes: {known}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file {path!r} is truncated: its header announces {ndim} dimensions "
                         f"({header} bytes) but the file has {len(raw)} bytes")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "longer than its header says"
        raise ValueError(f"IDX file {path!r} is {what}: shape {shape} of {dtype.name} needs "
                         f"{expected} data bytes, found {got}")
    data = np.frombuffer(raw, dtype=dtype, offset=header, count=math.prod(shape))
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array, compress=None):
    """Write ``array`` as an IDX file; ``compress=None`` gzips when ``path`` ends with ``.gz``,
    ``True``/``False`` force it. Supported dtypes: uint8, int8, int16, int32, float32, float64."""
    a = np.asarray(array)
    if a.dtype.name not in _IDX_CODES:
        raise ValueError(f"array dtype {a.dtype} cannot be written as IDX; supported: "
                         "uint8, int8, int16, int32, float32, float64")
    if a.ndim > 255:
        raise ValueError(f"array has {a.ndim} dimensions; IDX allows at most 255")
    code = _IDX_CODES[a.dtype.name]
    payload = (bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
               + np.ascontiguousarray(a, dtype=_IDX_TYPES[code]).tobytes())
    path = os.fspath(path)
    if compress is None:
        compress = path.endswith(".gz")
    if compress:
        payload = gzip.compress(payload)
    with open(path, "wb") as fh:
        fh.write(payload)
    return path


_MNIST_PREFIX = {"train": "train", "t10k": "t10k", "test": "t10k"}


def _find(data_dir, stem_variants):
    """The first existing file among the names (each also with ``.gz``) in ``data_dir``."""
    tried = []
    for stem in stem_variants:
        for name in (stem, stem + ".gz"):
            candidate = os.path.join(data_dir, name)
            tried.append(name)
            if os.path.isfile(candidate):
                return candidate
    raise FileNotFoundError(f"no MNIST file in {data_dir!r}: looked for {', '.join(tried)}")


def load_mnist(data_dir, kind="train"):
    """Images and labels of one MNIST split from ``data_dir``.

    ``kind``: ``"train"`` (60,000 images) or ``"t10k"`` (10,000; ``"test"`` is an alias). Files are
    found under their usual names, ``{kind}-images-idx3-ubyte`` and ``{kind}-labels-idx1-ubyte``
    (or with ``.idx3-ubyte`` after a dot), gzipped or not. Returns ``(images, labels)``: uint8
    images of shape (n, 28, 28) and int64 labels of shape (n,).
    """
    if kind not in _MNIST_PREFIX:
        raise ValueError(f"kind must be 'train' or 't10k' (or 'test'), got {kind!r}")
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"MNIST data_dir {data_dir!r} is not a directory")
    prefix = _MNIST_PREFIX[kind]
    img_path = _find(data_dir, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"])
    lbl_path = _find(data_dir, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"])
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3:
        raise ValueError(f"MNIST images {img_path!r} must have 3 dimensions (n, rows, cols), got "
                         f"shape {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"MNIST labels {lbl_path!r} have shape {labels.shape}, expected "
                         f"({images.shape[0]},) to match the images")
    return images, labels.astype(np.int64)
