"""`Embedding`: a lookup table of learned vectors, indexed by integer tokens."""

from __future__ import annotations

from array_api_compat import device as device_of

from .. import initializers
from ..backends import check_array
from .base import Layer, _positive_int

__all__ = ["Embedding"]

# Up to this many rows the weight gradient is one matrix product with a one-hot matrix (fastest
# for small tables); beyond, a sort and a segmented sum (memory and time independent of the
# table's size). Measured on NumPy and torch (CPU) for n·L = 640...8192 lookups of width 16...64:
# the two cross between 100 and 300 rows.
_ONE_HOT_MAX_ROWS = 128
_ONE_HOT_CHUNK = 1 << 22  # elements of one one-hot block: bounds its memory for long inputs


class Embedding(Layer):
    """A table ``W`` of ``num_embeddings`` vectors of size ``embedding_dim``, as
    ``torch.nn.Embedding``: integer indices ``t`` of any shape give ``y = W[t]`` of shape
    ``(*t.shape, embedding_dim)``.

    Forward:  ``y_{...,:} = W_{t_{...}, :}`` (a row lookup, ``xp.take``).

    Local gradient, for ``g = dL/dy``: ``dL/dW_v = Σ_{positions p with t_p = v} g_p`` (rows of
    repeated indices add up; rows never looked up get 0). The indices have no gradient:
    ``backward`` returns ``None``, also with ``need_input_grad=True``.

    The weight is ``weight`` (``num_embeddings``, ``embedding_dim``), drawn from ``init`` (any
    initializer spec, default N(0, 1) as PyTorch). An index outside ``[0, num_embeddings)`` is a
    ``ValueError`` naming the offending values (one host sync per ``forward``); float indices are
    a ``TypeError``. The gradient is computed without writing into any array (so it runs on JAX):
    for tables of up to 128 rows as ``onehot(t)ᵀ g`` in blocks, for larger tables by sorting the
    indices and summing each run of equal ones with a log-depth segmented scan: ``O(n log n)``
    work and ``O(n · dim)`` memory in the number ``n`` of lookups, whatever the table's size.
    """

    integer_input = True  #: the model's dtype check accepts integer input for this first layer

    def __init__(self, num_embeddings, embedding_dim, init=None):
        super().__init__()
        self.num_embeddings = _positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = _positive_int(embedding_dim, "embedding_dim")
        self.init = initializers.Normal(std=1.0) if init is None else initializers.get(init)
        self._cache_indices = None
        self._cache_shape = None

    def state_shapes(self):
        return {"weight": (self.num_embeddings, self.embedding_dim)}

    def _build(self, rng):
        self.add_parameter("weight", self.init(self.state_shapes()["weight"], rng))

    def _check_indices(self, x):
        """``x`` as a 1-D index array of a dtype every library's ``take`` accepts."""
        check_array(self.backend, x, "x")
        xp = self.xp
        if not xp.isdtype(x.dtype, "integral"):
            raise TypeError(f"Embedding expects integer indices x, got an array of dtype {x.dtype}")
        flat = xp.reshape(x, (-1,))
        outside = flat < 0
        if self.num_embeddings <= xp.iinfo(flat.dtype).max:
            # else no value of the dtype reaches the bound (and comparing with a Python int
            # outside the dtype's range wraps around in torch, and is an error in the standard)
            outside = outside | (flat >= self.num_embeddings)
        if bool(xp.any(outside)):
            bad = xp.unique_values(flat[outside])
            shown = ", ".join(str(int(bad[i])) for i in range(min(bad.shape[0], 8)))
            more = ", ..." if bad.shape[0] > 8 else ""
            raise ValueError(
                f"Embedding({self.num_embeddings}, {self.embedding_dim}): indices must be in "
                f"[0, {self.num_embeddings}), got {int(xp.sum(xp.astype(outside, xp.int64)))} "
                f"outside, with the values {shown}{more}")
        if flat.dtype not in (xp.int32, xp.int64):
            flat = xp.astype(flat, xp.int64)  # torch's index_select refuses other integer types
        return flat

    def forward(self, x, training=False):
        self._require_built()
        flat = self._check_indices(x)
        y = self.xp.take(self.weight.value, flat, axis=0)
        self._cache_indices = flat
        self._cache_shape = tuple(x.shape)
        return self.xp.reshape(y, (*self._cache_shape, self.embedding_dim))

    def backward(self, grad_out, need_input_grad=True):
        flat = self._cache_indices
        if flat is None:
            raise self._no_cache()
        expected = (*self._cache_shape, self.embedding_dim)
        if tuple(grad_out.shape) != expected:
            raise ValueError(f"Embedding.backward expects grad_out of shape {expected}, got "
                             f"{tuple(grad_out.shape)}")
        w = self.weight
        if not w.trainable:
            w.grad = None
        else:
            g = self.xp.reshape(grad_out, (-1, self.embedding_dim))
            if self.num_embeddings <= _ONE_HOT_MAX_ROWS:
                w.grad = self._grad_one_hot(flat, g)
            else:
                w.grad = self._grad_sorted(flat, g)
        # indices have no gradient, whatever need_input_grad asks

    def _grad_one_hot(self, flat, g):
        """``Σ_blocks onehot(t_block)ᵀ g_block``: one matmul per block of lookups."""
        xp, n = self.xp, flat.shape[0]
        rows = xp.arange(self.num_embeddings, dtype=flat.dtype, device=device_of(flat))
        step = max(1, _ONE_HOT_CHUNK // self.num_embeddings)
        total = None
        for start in range(0, max(n, 1), step):
            stop = min(start + step, n)
            one_hot_t = xp.astype(rows[:, None] == flat[None, start:stop], g.dtype)  # (V, block)
            part = one_hot_t @ g[start:stop, :]
            total = part if total is None else total + part
        return total

    def _grad_sorted(self, flat, g):
        """Sort the lookups by index, sum each run of equal indices with a segmented
        Hillis-Steele scan (pairwise-like rounding: a global running sum would subtract large
        partial sums and lose the rare rows' digits), and gather each run's total."""
        xp, n = self.xp, flat.shape[0]
        if n == 0:
            return xp.zeros((self.num_embeddings, self.embedding_dim), dtype=g.dtype,
                            device=device_of(g))
        order = xp.argsort(flat)
        keys = xp.take(flat, order)
        vals = xp.take(g, order, axis=0)
        pos = xp.arange(n, dtype=keys.dtype, device=device_of(keys))
        shift = 1
        while shift < n:  # after the pass with shift s, vals[i] sums its run's last 2s rows to i
            # shifted by a gather, not a slice: every pass has the same shapes, so a library
            # that compiles per shape (JAX) compiles one pass, not log2(n) of them
            src = xp.maximum(pos - shift, 0)
            same = (keys == xp.take(keys, src)) & (pos >= shift)
            vals = vals + xp.where(same[:, None], xp.take(vals, src, axis=0), 0.0)
            shift *= 2
        rows = xp.arange(self.num_embeddings, dtype=keys.dtype, device=device_of(keys))
        first = xp.searchsorted(keys, rows, side="left")
        end = xp.searchsorted(keys, rows, side="right")
        last = xp.take(vals, xp.maximum(end - 1, 0), axis=0)
        return xp.where((end > first)[:, None], last, 0.0)

    def output_shape(self, input_shape):
        return (*input_shape, self.embedding_dim)

    def get_config(self):
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "init": self.init.get_config()}
