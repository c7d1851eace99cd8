"""`Sequential`: a chain of layers on one backend; backprop is the layers' backward in reverse."""

from __future__ import annotations

from ..backends import check_array, get_backend, host_rng
from .base import Layer, layer_from_config

_DTYPES = ("float32", "float64")


def _check_chain(layers):
    """Raise if a layer expects a feature count that the layer before it does not produce (found
    here, naming both layers, rather than as a shape error at the first forward pass)."""
    width = None
    for i, layer in enumerate(layers):
        expects = getattr(layer, "in_features", getattr(layer, "features", None))
        if isinstance(expects, int) and not isinstance(expects, bool):
            if width is not None and expects != width:
                raise ValueError(
                    f"layer {i} ({type(layer).__name__}) expects {expects} input features, but "
                    f"layer {i - 1} ({type(layers[i - 1]).__name__}) outputs {width}"
                )
            width = expects
        if type(layer).output_shape is Layer.output_shape and \
                not type(layer).__module__.startswith("portable_nn."):
            width = None  # a user's layer that does not declare its output shape: unknown
        elif width is not None:
            width = layer.output_shape((None, width))[-1]


class Sequential:
    """A model: ``Sequential(Dense(2, 3), Sigmoid(), Dense(3, 1), device="cpu", dtype="float32",
    seed=0)``.

    The layers are built in order from one host generator seeded with ``seed``, so the same seed
    gives the same initial parameters on every backend. ``forward`` and ``backward`` are the
    course's two passes; ``fit``/``evaluate``/``predict`` wrap them in a training loop.
    """

    def __init__(self, *layers, device="cpu", dtype="float32", seed=None):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} must be a portable_nn Layer, got {type(layer).__name__}")
            if layer.built:
                raise ValueError(f"layer {i} ({type(layer).__name__}) is already built; "
                                 "give Sequential fresh layers")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        _check_chain(layers)
        backend = get_backend(device)
        rng = host_rng(seed)
        for layer in layers:
            layer.build(backend, dtype, rng)
        self.layers = list(layers)
        self.backend = backend
        self._dtype = backend.dtype(dtype)  # the namespace's dtype object, checked every pass
        self.dtype_name = dtype
        self.seed = seed
        self.optimizer = None  # set by fit(); moved by to()
        self.history = None
        self._holds_activations = False  # a forward pass's caches are held for backward

    # properties ---------------------------------------------------------------------------------
    @property
    def xp(self):
        return self.backend.xp

    @property
    def device(self):
        return self.backend.device_string

    @property
    def dtype(self):
        return self.backend.dtype(self.dtype_name)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    # the two passes -------------------------------------------------------------------------------
    def forward(self, x, training=False):
        """Output of the network for a batch ``x`` (an array of the model's backend)."""
        check_array(self.backend, x, "x")
        self._check_dtype(x, "x")
        # let go of the last pass's caches first: otherwise layer i+1 still holds the previous
        # batch's activation while layer i allocates the new one, and the peak holds both (after
        # a backward there is nothing left to free)
        if self._holds_activations:
            self.clear_cache()
        owned = False  # x is the caller's: no layer may write over it
        for layer in self.layers:
            x = (layer.forward_inplace(x, training=training) if owned
                 else layer.forward(x, training=training))
            owned = layer.owns_output
        self._holds_activations = True
        return x

    __call__ = forward

    def _check_dtype(self, x, argname):
        # NumPy would silently promote a float32 model to float64 (or compute on integers), and
        # torch refuses mixed dtypes deep inside a matmul: say it here, naming the argument
        if x.dtype != self._dtype:
            raise TypeError(
                f"{argname} has dtype {x.dtype}, but the model computes in {self.dtype_name}; "
                f"convert it with model.backend.asarray({argname}, dtype={self.dtype_name!r}) "
                f"(fit, evaluate and predict convert host data themselves)"
            )

    def backward(self, grad, need_input_grad=True, retain_cache=False):
        """Propagate ``dL/d(output)`` back through the layers; sets every ``p.grad`` and returns
        ``dL/d(input)`` (``None`` with ``need_input_grad=False``, which skips the first layer's
        largest matrix product).

        Each layer's cached activations are freed as soon as its backward has used them, as
        PyTorch frees the graph, so one forward allows one backward; ``retain_cache=True`` keeps
        them for another backward on the same forward pass."""
        check_array(self.backend, grad, "grad")
        self._check_dtype(grad, "grad")
        if not isinstance(retain_cache, bool):
            raise TypeError(f"retain_cache must be True or False, got {retain_cache!r}")
        owned = False  # grad is the caller's (the loss's): no layer may write over it
        for i in range(len(self.layers) - 1, -1, -1):
            layer, need = self.layers[i], need_input_grad or i > 0
            grad = (layer.backward_inplace(grad, need_input_grad=need) if owned
                    else layer.backward(grad, need_input_grad=need))
            owned = layer.owns_input_grad
            if not retain_cache:
                layer.clear_cache()  # its activations are not needed again: free them now
        self._holds_activations = retain_cache
        return grad

    def clear_cache(self):
        """Forget what the last forward cached for backward (it holds device memory)."""
        for layer in self.layers:
            layer.clear_cache()
        self._holds_activations = False

    # parameters and state -----------------------------------------------------------------------
    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self):
        return {f"{i}.{n}": p for i, layer in enumerate(self.layers)
                for n, p in layer.named_parameters().items()}

    def named_buffers(self):
        return {f"{i}.{n}": b for i, layer in enumerate(self.layers)
                for n, b in layer.buffers().items()}

    def num_parameters(self):
        return sum(layer.num_parameters() for layer in self.layers)

    def penalty(self):
        """Sum of the regularizers' penalties (added to the loss that training reports)."""
        total = 0.0
        for layer in self.layers:
            total = total + layer.penalty()
        return total

    def state_dict(self):
        """Parameters and buffers as host (NumPy) arrays keyed ``"<layer index>.<name>"``."""
        to_np = self.backend.to_numpy
        state = {k: to_np(p.value).copy() for k, p in self.named_parameters().items()}
        state.update({k: to_np(b).copy() for k, b in self.named_buffers().items()})
        return state

    def load_state_dict(self, state):
        """Set parameters and buffers from ``state_dict()`` output. Every key and shape is checked
        before anything is assigned, so a failed load leaves the model unchanged."""
        params, buffers = self.named_parameters(), self.named_buffers()
        expected = {**{k: p.shape for k, p in params.items()},
                    **{k: tuple(b.shape) for k, b in buffers.items()}}
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        if missing or extra:
            raise ValueError(f"state does not fit this model: missing {missing}, unexpected {extra}")
        for k, shape in expected.items():
            if tuple(state[k].shape) != shape:
                raise ValueError(f"state[{k!r}] has shape {tuple(state[k].shape)}, expected {shape}")
        converted = {}
        xp = self.xp
        for k, v in state.items():
            arr = self.backend.asarray(v, dtype=self.dtype_name if k in params else None)
            if k not in params and xp.isdtype(arr.dtype, "real floating") and arr.dtype != self.dtype:
                # a float64 running statistic in a float32 model would promote every output
                arr = xp.astype(arr, self.dtype)
            # never alias the caller's array (asarray may share memory with host data on some
            # backends): in-place optimizer updates would change it
            converted[k] = self.xp.asarray(arr, copy=True)
        for k, p in params.items():
            p.value = converted[k]
        for k in buffers:
            i, name = k.split(".", 1)
            self.layers[int(i)].set_buffer(name, converted[k])

    def get_weights(self):
        """Copies of parameters and buffers on the device (cheap snapshots for early stopping)."""
        xp = self.xp
        snap = {k: xp.asarray(p.value, copy=True) for k, p in self.named_parameters().items()}
        snap.update({k: xp.asarray(b, copy=True) for k, b in self.named_buffers().items()})
        return snap

    def set_weights(self, weights):
        """Restore a ``get_weights()`` snapshot (copied, so the snapshot stays intact)."""
        self.load_state_dict(weights)

    def to(self, device):
        """Move parameters, buffers and the attached optimizer's state to ``device``."""
        backend = get_backend(device)
        if backend == self.backend:
            return self
        for layer in self.layers:
            layer.to(backend)  # which drops the layer's cache
        self._holds_activations = False
        if self.optimizer is not None and hasattr(self.optimizer, "to"):
            self.optimizer.to(backend)
        self.backend = backend
        self._dtype = backend.dtype(self.dtype_name)
        return self

    # description --------------------------------------------------------------------------------
    def get_config(self):
        return {
            "layers": [{"class": type(l).__name__, "config": l.get_config()} for l in self.layers],
            "dtype": self.dtype_name,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config, device="cpu"):
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            # a malformed config is a bad value, like any other missing key
            raise ValueError(  # noqa: TRY004
                "a model config needs a 'layers' list")
        layers = [layer_from_config(entry) for entry in config["layers"]]
        return cls(*layers, device=device, dtype=config.get("dtype", "float32"),
                   seed=config.get("seed"))

    def summary(self, input_features=None):
        """A table of layers, output shapes and parameter counts (returned as a string)."""
        shape = (None, input_features if input_features is not None else
                 next((l.in_features for l in self.layers
                       if hasattr(l, "in_features")), None))
        rows = [("#", "layer", "output shape", "params")]
        for i, layer in enumerate(self.layers):
            shape = layer.output_shape(shape)
            rows.append((str(i), repr(layer) if len(repr(layer)) < 40 else type(layer).__name__,
                         str(shape), f"{layer.num_parameters():,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "-" * (sum(widths) + 6)
        out = [f"Sequential on {self.device!r}, dtype {self.dtype_name}", line]
        for j, r in enumerate(rows):
            out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)))
            if j == 0:
                out.append(line)
        out += [line, f"total parameters: {self.num_parameters():,}"]
        return "\n".join(out)

    def __repr__(self):
        inner = ",\n  ".join(repr(l) for l in self.layers)
        return f"Sequential(\n  {inner},\n  device={self.device!r}, dtype={self.dtype_name!r})"

    # training API (implemented in portable_nn.training) ------------------------------------------
    def fit(self, X, y, **kwargs):
        from .. import training

        return training.fit(self, X, y, **kwargs)

    def evaluate(self, X, y, **kwargs):
        from .. import training

        return training.evaluate(self, X, y, **kwargs)

    def predict(self, X, **kwargs):
        from .. import training

        return training.predict(self, X, **kwargs)
