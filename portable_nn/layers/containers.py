"""Containers: layers made of layers.

`Sequential` chains layers (``y = f_k(... f_1(x))``), `Residual` adds its chain's output to its
input (``y = x + f(x)``) and `Concatenate` feeds one input to several branches and joins their
outputs. They share one base, `Container`, which owns what a layer made of layers needs: building
the children in order from one generator (so one seed gives the same weights on every backend),
gathering their parameters, buffers and caches under dotted names (``"2.0.weight"``: child 2's
child 0's weight), moving them, describing them (config and summary rows). Each container adds
only its own forward and backward, as Thinc's combinators do.

Containers nest: a branch is any layer, and a `Sequential` given no device is an unbuilt chain
that the model holding it builds. The training methods (``fit``, ``evaluate``, ``predict``,
``predict_proba``) are attached to `Sequential` by ``portable_nn.training``: nothing here imports
the loop.
"""

from __future__ import annotations

import textwrap

from ..backends import check_array, get_backend, host_rng
from .base import Layer, layer_from_config

__all__ = ["Concatenate", "Container", "Residual", "Sequential"]

_DTYPES = ("float32", "float64")


def _dtype_name(dtype):
    """``"float32"``/``"float64"`` from a name or a dtype object of any library (``np.float32``,
    ``np.dtype("float64")``, ``torch.float32``, ``jnp.float64``)."""
    if isinstance(dtype, str):
        name = dtype
    else:
        name = getattr(dtype, "name", None) or getattr(dtype, "__name__", None) or str(dtype)
        name = str(name).rsplit(".", 1)[-1]
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES} (a name or a dtype object), got "
                         f"{dtype!r}")
    return name


# the chain's two passes, shared by Sequential and Residual ----------------------------------------
def forward_chain(layers, x, training, owned):
    """``x`` through ``layers`` in order. ``owned``: only the chain holds ``x`` (the layer before
    returned a new array), so the first layer may write over it; the caller's arrays never are."""
    for layer in layers:
        x = (layer.forward_inplace(x, training=training) if owned
             else layer.forward(x, training=training))
        owned = layer.owns_output
    return x


def backward_chain(layers, grad, need_input_grad, owned, free):
    """``grad`` back through ``layers`` in reverse; ``free``: drop each layer's cache once its
    backward has run (its activations are not needed again)."""
    for i in range(len(layers) - 1, -1, -1):
        layer, need = layers[i], need_input_grad or i > 0
        grad = (layer.backward_inplace(grad, need_input_grad=need) if owned
                else layer.backward(grad, need_input_grad=need))
        owned = layer.owns_input_grad
        if free:
            layer.clear_cache()
    return grad


class Container(Layer):
    """A layer made of the layers in ``self.layers`` (its children).

    Building builds each child in order on the container's backend and dtype from the one host
    generator, except a child that is already built on that backend and dtype (a trained model
    reused inside a new one), which is kept as it is. Parameters, buffers, caches, moves, configs
    and penalties are the children's, named ``"<child index>.<child's name>"``.
    """

    def __init__(self, layers, kind=None):
        super().__init__()
        kind = kind or type(self).__name__
        seen = set()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"{kind}: layer {i} must be a portable_nn Layer, got "
                                f"{type(layer).__name__}")
            for sub in layer.modules():
                if id(sub) in seen:
                    raise ValueError(
                        f"{kind}: layer {i} ({type(sub).__name__}) appears twice; a layer keeps "
                        "the activations of its last forward pass, so one instance cannot sit "
                        "in two places: create a second layer (weights are not shared)")
                seen.add(id(sub))
        self.layers = list(layers)

    # building ----------------------------------------------------------------------------------
    def _build(self, rng):
        dtype_name = self.backend.dtype_name(self.dtype)
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Sequential):
                layer._check_nested(i, dtype_name)
            if layer.built:
                if layer.backend != self.backend or layer.dtype != self.dtype:
                    raise ValueError(
                        f"layer {i} ({type(layer).__name__}) is already built on "
                        f"{layer.backend.device_string!r} in "
                        f"{layer.backend.dtype_name(layer.dtype)}, but the model is on "
                        f"{self.backend.device_string!r} in {dtype_name}: move it first "
                        f"(layer.to(...)) or give the model a fresh layer")
            else:
                layer.build(self.backend, self.dtype, rng)

    def modules(self):
        yield self
        for layer in self.layers:
            yield from layer.modules()

    def named_modules(self, prefix=""):
        yield prefix, self
        for i, layer in enumerate(self.layers):
            yield from layer.named_modules(f"{prefix}.{i}" if prefix else str(i))

    # state -------------------------------------------------------------------------------------
    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self):
        return {f"{i}.{n}": p for i, layer in enumerate(self.layers)
                for n, p in layer.named_parameters().items()}

    def buffers(self):
        return {f"{i}.{n}": b for i, layer in enumerate(self.layers)
                for n, b in layer.buffers().items()}

    def set_buffer(self, name, value):
        index, _, rest = name.partition(".")
        if not (index.isdigit() and int(index) < len(self.layers) and rest):
            raise ValueError(f"{type(self).__name__} has no buffer {name!r}")
        self.layers[int(index)].set_buffer(rest, value)

    def num_parameters(self):
        return sum(layer.num_parameters() for layer in self.layers)

    def penalty(self):
        total = 0.0
        for layer in self.layers:
            total = total + layer.penalty()
        return total

    def clear_cache(self):
        for layer in self.layers:
            layer.clear_cache()
        Layer.clear_cache(self)

    @property
    def trainable(self):
        """``True`` unless every layer inside is frozen; setting it freezes or unfreezes all."""
        return not self.layers or any(layer.trainable for layer in self.layers)

    @trainable.setter
    def trainable(self, value):
        if not isinstance(value, bool):
            raise TypeError(f"trainable must be True or False, got {value!r}")
        for layer in self.layers:
            layer.trainable = value

    def to(self, device):
        """Move every child to ``device``."""
        self._require_built()
        backend = get_backend(device)
        dtype = backend.dtype(self.backend.dtype_name(self.dtype))
        for layer in self.layers:
            layer.to(backend)
        self.backend, self.xp, self.dtype = backend, backend.xp, dtype
        Layer.clear_cache(self)
        return self

    # description -------------------------------------------------------------------------------
    def get_config(self):
        return {"layers": [layer.config_entry() for layer in self.layers]}

    def config_entry(self):
        # a container's children carry their own "trainable"; the container has none of its own
        return {"class": type(self).__name__, "config": self.get_config()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        entries = config.pop("layers", None)
        if not isinstance(entries, list):
            raise ValueError(  # noqa: TRY004 - a malformed config is a bad value
                f"a {cls.__name__} config needs a 'layers' list, got {entries!r}")
        return cls(*[layer_from_config(entry) for entry in entries], **config)

    def state_shapes(self):
        """The children's declared shapes under dotted names, ``None`` if one cannot say."""
        shapes = {}
        for i, layer in enumerate(self.layers):
            sub = layer.state_shapes()
            if sub is None:
                return None
            shapes.update({f"{i}.{n}": s for n, s in sub.items()})
        return shapes

    _chain = True  # children run one after the other (False: side by side, on one input)

    def summary_rows(self, input_shape, depth=0):
        """``[(depth, name, output shape, parameters, frozen parameters)]`` for this container and
        everything in it; ``input_shape`` has the batch axis as ``None``, and an unknown shape is
        ``None``."""
        rows = [(depth, type(self).__name__, _output_shape(self, input_shape),
                 self.num_parameters(), _frozen_count(self))]
        shape = input_shape
        for layer in self.layers:
            if isinstance(layer, Container):
                rows += layer.summary_rows(shape, depth + 1)
            else:
                rows.append((depth + 1, _short_repr(layer), _output_shape(layer, shape),
                             layer.num_parameters(), _frozen_count(layer)))
            if self._chain:
                shape = _output_shape(layer, shape)
        return rows

    def __repr__(self):
        return f"{type(self).__name__}(\n{_children_repr(self.layers)}\n)"


def _first_learning(layers):
    """The index of the first layer with a trainable parameter (``len(layers)`` if none); plain
    loops, as this runs every training step and almost always stops at the first layer."""
    for i, layer in enumerate(layers):
        for p in layer.parameters():
            if p.trainable:
                return i
    return len(layers)


def _children_repr(layers):
    """The children's reprs, one per line (a nested container's indented as a block)."""
    return ",\n".join(textwrap.indent(repr(layer), "  ") for layer in layers)


def _frozen_count(layer):
    return sum(p.size for p in layer.parameters() if not p.trainable)


def _short_repr(layer):
    text = repr(layer)
    return text if len(text) < 40 and "\n" not in text else type(layer).__name__


def _output_shape(layer, shape):
    """``layer.output_shape(shape)``, or ``None`` when the shape is unknown or the layer cannot
    say for it."""
    if shape is None:
        return None
    try:
        out = layer.output_shape(shape)
    except (ValueError, TypeError, IndexError):
        return None
    return tuple(out) if out is not None else None


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
        if (type(layer).output_shape is Layer.output_shape and
                not type(layer).__module__.startswith("portable_nn.")) or \
                isinstance(layer, Container):
            width = None  # a user's layer that does not declare its output shape: unknown
        elif width is not None:
            out = _output_shape(layer, (None, width))
            width = out[-1] if out is not None and len(out) == 2 else None


class Sequential(Container):
    """A chain of layers, and the model that trains them: ``Sequential(Dense(2, 3), Sigmoid(),
    Dense(3, 1), device="cpu", dtype="float32", seed=0)``.

    The layers are built in order from one host generator seeded with ``seed``, so the same seed
    gives the same initial parameters on every backend. ``forward`` and ``backward`` are the
    course's two passes; ``fit``/``evaluate``/``predict``/``predict_proba`` (from
    ``portable_nn.training``) wrap them in a training loop. ``add(layer)`` appends a layer
    before the model is built.

    ``device``: where the model lives (``"cpu"``, ``"cuda"``, ``"torch:cpu"``, ``"jax"``, ...).
    Given no device, the chain stays unbuilt until it is used: nested in another container it
    is built by that container (on its device, in its dtype, from its generator); used as a
    model (``forward``, ``fit``, ``parameters()``, ``model.backend``, ...) it builds itself on
    the CPU. ``dtype``: ``"float32"`` (default) or ``"float64"``, or a dtype object of any
    library (``np.float32``). ``seed``: an int for reproducible weights; it also seeds ``fit``'s
    shuffling and the Dropout masks, unless ``fit(seed=...)`` overrides it.

    A layer that is already built (a trained model, say) may go into a new model on the same
    backend and dtype: it keeps its weights (set ``layer.trainable = False`` to freeze them).
    """

    def __init__(self, *layers, device=None, dtype=None, seed=None):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        self._backend = self._dtype = None
        super().__init__(layers, kind="Sequential")
        self._explicit_dtype = dtype is not None
        self.dtype_name = _dtype_name("float32" if dtype is None else dtype)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        _check_chain(self.layers)
        self.seed = seed
        self.optimizer = None  # set by fit(); moved by to()
        self.history = None
        self._holds_activations = False  # a forward pass's caches are held for backward
        self._nested = False  # built by a container that holds it: never builds itself
        if device is not None:
            self.build(device, self.dtype_name, seed=seed)

    # building ----------------------------------------------------------------------------------
    def add(self, layer):
        """Append ``layer`` to the chain (before the model is built); returns the model."""
        if self.built:
            raise RuntimeError("Sequential.add: the model is already built (it was given a "
                               "device, or used); add layers before that")
        candidate = Sequential(*self.layers, layer)  # the same checks as at construction
        self.layers = candidate.layers
        return self

    def build(self, backend="cpu", dtype=None, rng=None, *, seed=None):
        """Build every layer on ``backend`` in ``dtype`` from ``rng`` (or from a generator seeded
        with ``seed``, by default the model's own)."""
        dtype = self.dtype_name if dtype is None else dtype
        super().build(backend, dtype, rng, seed=self.seed if seed is None else seed)
        self.dtype_name = self._backend.dtype_name(self._dtype)
        return self

    def _check_nested(self, index, dtype_name):
        """A Sequential inside another takes its device, dtype and generator from it."""
        if not self.built:
            if self.seed is not None:
                raise ValueError(
                    f"layer {index} is a Sequential given seed={self.seed}: a nested "
                    "Sequential's weights are drawn from the model that builds it; give the "
                    "seed to the outermost Sequential")
            if self._explicit_dtype and self.dtype_name != dtype_name:
                raise ValueError(
                    f"layer {index} is a Sequential in {self.dtype_name}, but the model that "
                    f"holds it computes in {dtype_name}")
        self._nested = True

    def _ensure_built(self):
        """An unbuilt chain used as a model builds itself on the CPU (a nested one is built by
        its parent, which must happen first)."""
        if self._backend is None:
            if self._nested:
                raise RuntimeError("this Sequential is nested in another container, which "
                                   "builds it: use the outer model")
            self.build("cpu")

    # properties --------------------------------------------------------------------------------
    # ``backend``, ``xp`` and ``dtype`` build an unbuilt top-level model on first use (so a model
    # given no device works as before, on the CPU); Layer.build and to() set them
    @property
    def backend(self):
        if self._backend is None:
            self._ensure_built()
        return self._backend

    @backend.setter
    def backend(self, value):
        self._backend = value

    @property
    def xp(self):
        return self.backend.xp

    @xp.setter
    def xp(self, value):
        pass  # always the backend's namespace

    @property
    def dtype(self):
        if self._backend is None:
            self._ensure_built()
        return self._dtype

    @dtype.setter
    def dtype(self, value):
        self._dtype = value  # the namespace's dtype object, checked every pass

    @property
    def built(self):
        return self._backend is not None

    @property
    def device(self):
        return self.backend.device_string

    @property
    def integer_input(self):
        """Whether the model takes integer indices (its first layer is an ``Embedding``)."""
        return bool(self.layers) and self.layers[0].integer_input

    @property
    def owns_output(self):
        return bool(self.layers) and self.layers[-1].owns_output

    @property
    def owns_input_grad(self):
        return bool(self.layers) and self.layers[0].owns_input_grad

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    # the two passes ----------------------------------------------------------------------------
    def forward(self, x, training=False):
        """Output of the network for a batch ``x`` (an array of the model's backend)."""
        return self._forward(x, training, owned=False)

    __call__ = forward

    def forward_inplace(self, x, training=False):
        return self._forward(x, training, owned=True)

    def _forward(self, x, training, owned):
        backend = self.backend
        x = check_array(backend, x, "x")  # (a torch tensor that requires grad comes detached)
        self._check_input_dtype(x)
        # let go of the last pass's caches first: otherwise layer i+1 still holds the previous
        # batch's activation while layer i allocates the new one, and the peak holds both (after
        # a backward there is nothing left to free)
        if self._holds_activations:
            self.clear_cache()
        with backend.device_context():  # on cuda:N every array is made on GPU N
            x = forward_chain(self.layers, x, training, owned)
        self._holds_activations = True
        return x

    def _check_input_dtype(self, x):
        # NumPy would silently promote a float32 model to float64 (or compute on integers), and
        # torch refuses mixed dtypes deep inside a matmul: say it here, naming the argument
        if x.dtype == self._dtype:
            return
        if self.integer_input:
            if not self.xp.isdtype(x.dtype, "integral"):
                raise TypeError(
                    f"x has dtype {x.dtype}, but the model's first layer "
                    f"({type(self.layers[0]).__name__}) takes integer indices; convert it with "
                    "model.backend.asarray(x) from integer data")
            return
        self._check_dtype(x, "x")

    def _check_dtype(self, x, argname):
        if x.dtype != self._dtype:
            raise TypeError(
                f"{argname} has dtype {x.dtype}, but the model computes in {self.dtype_name}; "
                f"convert it with model.backend.asarray({argname}, dtype={self.dtype_name!r}) "
                f"(fit, evaluate and predict convert host data themselves)"
            )

    def backward(self, grad, need_input_grad=True, retain_cache=False):
        """Propagate ``dL/d(output)`` back through the layers; sets every ``p.grad`` and returns
        ``dL/d(input)`` (``None`` with ``need_input_grad=False``, which skips the first layer's
        largest matrix product, and every layer before the first one that learns).

        Each layer's cached activations are freed as soon as its backward has used them, as
        PyTorch frees the graph, so one forward allows one backward; ``retain_cache=True`` keeps
        them for another backward on the same forward pass."""
        return self._backward(grad, need_input_grad, retain_cache, owned=False)

    def backward_inplace(self, grad_out, need_input_grad=True):
        return self._backward(grad_out, need_input_grad, False, owned=True)

    def _backward(self, grad, need_input_grad, retain_cache, owned):
        grad = check_array(self.backend, grad, "grad")
        self._check_dtype(grad, "grad")
        if not isinstance(retain_cache, bool):
            raise TypeError(f"retain_cache must be True or False, got {retain_cache!r}")
        layers = self.layers
        if not need_input_grad:
            # the layers before the first that learns need no gradient at all (frozen layers
            # at the bottom of a fine-tuned model): stop there
            start = _first_learning(layers)
            if start:
                layers = layers[start:]
                if not (retain_cache or self._nested):
                    for layer in self.layers[:start]:
                        layer.clear_cache()
        # nested in a container, the parent frees the caches (it may have been asked to keep them)
        free = not (retain_cache or self._nested)
        with self.backend.device_context():
            grad = backward_chain(layers, grad, need_input_grad, owned, free=free)
        self._holds_activations = retain_cache
        return grad if need_input_grad else None

    def clear_cache(self):
        """Forget what the last forward cached for backward (it holds device memory)."""
        super().clear_cache()
        self._holds_activations = False

    # parameters and state ----------------------------------------------------------------------
    def parameters(self):
        self._ensure_built()
        return super().parameters()

    def named_parameters(self):
        self._ensure_built()
        return super().named_parameters()

    def named_buffers(self):
        self._ensure_built()
        return self.buffers()

    def state_dict(self):
        """Parameters and buffers as host (NumPy) arrays keyed by their dotted names
        (``"<layer index>.<name>"``, one more index per level of nesting)."""
        to_np = self.backend.to_numpy
        state = {k: to_np(p.value).copy() for k, p in self.named_parameters().items()}
        state.update({k: to_np(b).copy() for k, b in self.named_buffers().items()})
        return state

    def load_state_dict(self, state):
        """Set parameters and buffers from ``state_dict()`` output. Every key and shape is checked
        before anything is assigned, so a failed load leaves the model unchanged."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        params, buffers = self.named_parameters(), self.named_buffers()
        expected = {**{k: p.shape for k, p in params.items()},
                    **{k: tuple(b.shape) for k, b in buffers.items()}}
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        if missing or extra:
            raise ValueError(f"state does not fit this model: missing {missing}, unexpected {extra}")
        for k, shape in expected.items():
            if tuple(getattr(state[k], "shape", ())) != shape:
                raise ValueError(f"state[{k!r}] has shape {tuple(getattr(state[k], 'shape', ()))}"
                                 f", expected {shape}")
        converted = {}
        xp = self.xp
        for k, v in state.items():
            arr = self.backend.asarray(v, dtype=self.dtype_name if k in params else None)
            if k not in params and xp.isdtype(arr.dtype, "real floating") and arr.dtype != self.dtype:
                # a float64 running statistic in a float32 model would promote every output
                arr = xp.astype(arr, self.dtype)
            # never alias the caller's array (asarray may share memory with host data on some
            # backends): in-place optimizer updates would change it
            converted[k] = xp.asarray(arr, copy=True)
        for k, p in params.items():
            p.value = converted[k]
        for k in buffers:
            self.set_buffer(k, converted[k])

    def get_weights(self):
        """Copies of parameters and buffers on the device (cheap snapshots for early stopping)."""
        xp = self.xp
        snap = {k: xp.asarray(p.value, copy=True) for k, p in self.named_parameters().items()}
        snap.update({k: xp.asarray(b, copy=True) for k, b in self.named_buffers().items()})
        return snap

    def set_weights(self, weights):
        """Restore a ``get_weights()`` snapshot (copied, so the snapshot stays intact)."""
        self.load_state_dict(weights)

    def num_parameters(self):
        self._ensure_built()
        return super().num_parameters()

    # random streams: checkpoints carry them, so that a loaded model goes on as if never stopped
    def get_rng_state(self):
        """``{"fit": ..., "layers": {path: ...}}``, JSON-able: the state of ``fit``'s shuffling
        generator (``None`` before the first fit) and of every layer with a random stream
        (Dropout), by dotted path."""
        fit = getattr(self, "_fit_rng", None)
        layers = {path: layer.rng_state() for path, layer in self.named_modules()
                  if layer.rng_state() is not None}
        return {"fit": None if fit is None else fit.bit_generator.state, "layers": layers}

    def set_rng_state(self, state):
        """Restore ``get_rng_state()`` output; everything is checked before anything changes."""
        if not isinstance(state, dict) or set(state) != {"fit", "layers"} or \
                not isinstance(state["layers"], dict):
            raise ValueError("an rng state is {'fit': ..., 'layers': {path: state}}, got "
                             f"{type(state).__name__}")
        owners = {path: layer for path, layer in self.named_modules()
                  if layer.rng_state() is not None}
        if set(state["layers"]) != set(owners):
            raise ValueError(f"the rng state names the layers {sorted(state['layers'])}, but the "
                             f"model's random layers are {sorted(owners)}")
        fit = None
        if state["fit"] is not None:
            fit = host_rng(None)
            try:
                fit.bit_generator.state = state["fit"]
            except (TypeError, ValueError, KeyError) as exc:
                raise ValueError(f"the rng state of fit's generator is malformed ({exc})") \
                    from None
        saved = {path: layer.rng_state() for path, layer in owners.items()}
        try:
            for path, layer in owners.items():
                layer.set_rng_state(state["layers"][path])
        except ValueError:
            for path, layer in owners.items():  # put back what was set before the bad one
                layer.set_rng_state(saved[path])
            raise
        self._fit_rng = fit

    def penalty(self):
        """Sum of the regularizers' penalties (added to the loss that training reports)."""
        self._ensure_built()
        return super().penalty()

    def to(self, device):
        """Move parameters, buffers and the attached optimizer's state to ``device``."""
        backend = get_backend(device)
        if backend == self.backend:
            return self
        super().to(backend)  # every layer's cache is dropped on the way
        self._holds_activations = False
        if self.optimizer is not None and hasattr(self.optimizer, "to"):
            self.optimizer.to(backend)
        return self

    # description -------------------------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        if not self._nested:
            config.update(dtype=self.dtype_name, seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config, device="cpu"):
        """A model from ``get_config()`` output, built on ``device`` (``None``: unbuilt, as a
        nested chain is rebuilt)."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            # a malformed config is a bad value, like any other missing key
            raise ValueError(  # noqa: TRY004
                "a model config needs a 'layers' list")
        unknown = sorted(set(config) - {"layers", "dtype", "seed"})
        if unknown:
            raise ValueError(f"a Sequential config has no entries {unknown}")
        layers = [layer_from_config(entry) for entry in config["layers"]]
        return cls(*layers, device=device, dtype=config.get("dtype"), seed=config.get("seed"))

    @classmethod
    def _from_entry(cls, config):
        return cls.from_config(config, device=None)

    def summary(self, input_features=None, input_shape=None):
        """A table of the layers (nested ones indented), their output shapes and parameter
        counts, with the totals of trainable and frozen parameters (returned as a string).

        ``input_shape``: one sample's shape (``(1, 28, 28)`` for images) to work out the output
        shapes; ``input_features`` is the same for flat input (an int). By default the first
        layer's declared input width is used where it has one."""
        self._ensure_built()
        if input_shape is None and input_features is not None:
            input_shape = (input_features,)
        if input_shape is None:
            first = next((m for m in self.modules() if not isinstance(m, Container)), None)
            width = getattr(first, "in_features", None)
            input_shape = None if width is None else (width,)
        shape = None if input_shape is None else (None, *tuple(input_shape))
        rows = self.summary_rows(shape)[1:]  # the model itself is the table
        head = ("layer", "output shape", "params")
        body = [("  " * (depth - 1) + name, "?" if out is None else str(out), f"{count:,}")
                for depth, name, out, count, _ in rows]
        widths = [max(len(r[c]) for r in [head, *body]) for c in range(3)]
        line = "-" * (sum(widths) + 4)
        out = [f"Sequential on {self.device!r}, dtype {self.dtype_name}", line,
               "  ".join(c.ljust(w) for c, w in zip(head, widths)), line]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
        total, frozen = self.num_parameters(), _frozen_count(self)
        out += [line, f"total parameters: {total:,}",
                f"trainable parameters: {total - frozen:,}", f"frozen parameters: {frozen:,}"]
        return "\n".join(out)

    def output_shape(self, input_shape):
        shape = input_shape
        for layer in self.layers:
            shape = _output_shape(layer, shape)
        return shape

    def __repr__(self):
        inner = _children_repr(self.layers)
        where = "" if self._backend is None else f",\n  device={self._backend.device_string!r}"
        return f"Sequential(\n{inner}{where},\n  dtype={self.dtype_name!r})"


class Residual(Container):
    """A skip connection: ``y = x + f(x)``, ``f`` the chain of ``layers`` (He et al. 2016).

    Local gradient: ``dL/dx = g + J_f(x)ᵀ g`` with ``g = dL/dy``: the gradient passes both
    around the chain unchanged and through it. ``f(x)`` must have ``x``'s shape.
    """

    owns_output = True  # x + f(x) is a new array
    owns_input_grad = True  # g + f's input gradient too

    def __init__(self, *layers):
        if not layers:
            raise ValueError("Residual needs at least one layer (y = x + f(x) with f the chain "
                             "of the layers given)")
        super().__init__(layers)
        _check_chain(self.layers)
        self._cache_shape = None

    @property
    def integer_input(self):
        return False

    def forward(self, x, training=False):
        self._require_built()
        fx = forward_chain(self.layers, x, training, owned=False)  # x is used again below
        if tuple(fx.shape) != tuple(x.shape):
            raise ValueError(f"Residual: its layers turn input of shape {tuple(x.shape)} into "
                             f"{tuple(fx.shape)}; y = x + f(x) needs f(x) of x's shape")
        self._cache_shape = tuple(x.shape)
        return x + fx

    def backward(self, grad_out, need_input_grad=True):
        if self._cache_shape is None:
            raise self._no_cache()
        if tuple(grad_out.shape) != self._cache_shape:
            raise ValueError(f"Residual.backward expects grad_out of shape {self._cache_shape}, "
                             f"got {tuple(grad_out.shape)}")
        g = backward_chain(self.layers, grad_out, need_input_grad, owned=False, free=False)
        return grad_out + g if need_input_grad else None

    def output_shape(self, input_shape):
        return input_shape


class Concatenate(Container):
    """Branches side by side: every branch gets the same input ``x`` and
    ``y = concat([b_1(x), ..., b_k(x)], axis)``. A branch is any layer (a `Sequential` for a
    chain). Local gradient: ``g = dL/dy`` is split along ``axis`` into the branches' pieces
    ``g_j``, and ``dL/dx = Σ_j J_{b_j}(x)ᵀ g_j``. ``axis`` may not be the batch axis (0).
    """

    owns_output = True  # concat makes a new array
    owns_input_grad = True
    _chain = False

    def __init__(self, *branches, axis=-1):
        if not branches:
            raise ValueError("Concatenate needs at least one branch")
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"axis must be an int, got {type(axis).__name__} {axis!r}")
        if axis == 0:
            raise ValueError("axis=0 is the batch axis: Concatenate joins the branches' outputs "
                             "along a feature axis (default -1)")
        super().__init__(branches)
        self.axis = axis
        self._cache_sizes = None

    @property
    def integer_input(self):
        return all(branch.integer_input for branch in self.layers)

    def _axis(self, ndim):
        axis = self.axis + ndim if self.axis < 0 else self.axis
        if not 0 < axis < ndim:
            raise ValueError(f"Concatenate(axis={self.axis}) needs outputs with more than "
                             f"{max(self.axis, -self.axis - 1)} axes after the batch axis, got "
                             f"{ndim}-D outputs")
        return axis

    def forward(self, x, training=False):
        self._require_built()
        outs = [branch.forward(x, training=training) for branch in self.layers]
        axis = self._axis(outs[0].ndim)
        first = tuple(outs[0].shape)
        for j, out in enumerate(outs[1:], 1):
            shape = tuple(out.shape)
            if len(shape) != len(first) or any(a != b for k, (a, b) in
                                                enumerate(zip(shape, first)) if k != axis):
                raise ValueError(
                    f"Concatenate(axis={self.axis}): branch {j} outputs shape {shape}, branch 0 "
                    f"{first}; they may differ only along the axis {self.axis}")
        self._cache_sizes = (axis, [out.shape[axis] for out in outs])
        return outs[0] if len(outs) == 1 else self.xp.concat(outs, axis=axis)

    def backward(self, grad_out, need_input_grad=True):
        if self._cache_sizes is None:
            raise self._no_cache()
        axis, sizes = self._cache_sizes
        if grad_out.ndim <= axis or grad_out.shape[axis] != sum(sizes):
            raise ValueError(f"Concatenate.backward expects grad_out with {sum(sizes)} entries "
                             f"along axis {self.axis}, got shape {tuple(grad_out.shape)}")
        total, start = None, 0
        index = [slice(None)] * grad_out.ndim
        for branch, size in zip(self.layers, sizes):
            index[axis] = slice(start, start + size)
            start += size
            g = branch.backward(grad_out[tuple(index)], need_input_grad=need_input_grad)
            if need_input_grad:
                total = g if total is None else total + g
        return total

    def output_shape(self, input_shape):
        outs = [_output_shape(branch, input_shape) for branch in self.layers]
        if any(o is None for o in outs):
            return None
        axis = self._axis(len(outs[0]))
        if any(o[axis] is None for o in outs):
            return (*outs[0][:axis], None, *outs[0][axis + 1:])
        return (*outs[0][:axis], sum(o[axis] for o in outs), *outs[0][axis + 1:])

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
