"""`Layer`: a block with a forward pass and its local gradient.

A layer is created without a device (``Dense(784, 256)``) and built onto one by the model that holds
it (``Sequential(..., device="cuda")``), or by hand with ``layer.build("cpu", "float64", seed=0)``.
``forward`` caches what ``backward`` needs; ``backward(grad_out)`` sets ``p.grad`` of the layer's own
parameters (it does not accumulate) and returns the gradient with respect to the layer's input, or
``None`` when called with ``need_input_grad=False`` (the first layer of a model during training).
"""

from __future__ import annotations

from ..backends import Backend, get_backend, host_rng
from ..parameter import Parameter

LAYER_CLASSES: dict[str, type] = {}


def _positive_int(value, argname):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argname} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{argname} must be >= 1, got {value}")
    return value


class Layer:
    """Base class. Subclasses implement ``forward``/``backward`` and, if they own parameters or
    buffers, ``_build(rng)``; ``get_config()`` returns the constructor's keyword arguments so that
    checkpoints can rebuild the layer without pickling.

    ``trainable`` (default ``True``): set it to ``False`` to freeze the layer (on a container,
    everything it holds): its parameters get no gradient from ``backward``, no update or weight
    decay from any optimizer and no regularization penalty. Checkpoints keep the setting.
    ``integer_input`` (a class attribute) is ``True`` for a layer whose input is integer indices
    (``Embedding``): a model that starts with one takes integer input.
    """

    integer_input = False
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        LAYER_CLASSES[cls.__name__] = cls

    def __init__(self):
        self.backend: Backend | None = None
        self.xp = None
        self.dtype = None
        self._params: dict[str, Parameter] = {}
        self._buffers: dict[str, object] = {}
        self._trainable = True

    # construction -----------------------------------------------------------------------------
    def build(self, backend="cpu", dtype="float32", rng=None, *, seed=None):
        """Place the layer on ``backend`` in ``dtype``; draw initial weights from ``rng`` (a host
        ``numpy.random.Generator``) or from a new one seeded with ``seed``."""
        backend = get_backend(backend)
        self.backend = backend
        self.xp = backend.xp
        self.dtype = backend.dtype(dtype)
        self._build(rng if rng is not None else host_rng(seed))
        return self

    def _build(self, rng):
        """Create parameters and buffers (with ``self.add_parameter``); nothing by default."""

    def add_parameter(self, name, host_value, **kwargs) -> Parameter:
        p = Parameter(self.backend.asarray(host_value, dtype=self.dtype), name=name,
                      trainable=self.__dict__.get("_trainable", True), **kwargs)
        self._params[name] = p
        setattr(self, name, p)
        return p

    @property
    def built(self):
        return self.backend is not None

    def _require_built(self):
        if self.backend is None:
            raise RuntimeError(
                f"{type(self).__name__} is not built: put it in a Sequential(..., device=...) or "
                f"call layer.build(device, dtype) first"
            )

    # the two halves ---------------------------------------------------------------------------
    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, grad_out, need_input_grad=True):
        raise NotImplementedError

    def __call__(self, x, training=False):
        return self.forward(x, training=training)

    # Sequential's in-place chain: ``Sequential`` calls ``forward_inplace`` instead of
    # ``forward`` when the layer before declared ``owns_output`` (so only the model holds the
    # array), and ``backward_inplace`` when the layer after declared ``owns_input_grad``. These
    # may write over their argument (ReLU does, on NumPy: one array and one pass fewer per
    # activation); by default they are the plain passes. Called on their own, layers never write
    # into what they are given.
    owns_output = False  #: forward returns a new array that the layer does not keep
    owns_input_grad = False  #: backward returns a new array that the layer does not keep

    def forward_inplace(self, x, training=False):
        """``forward(x)``, free to write over ``x``, which no one else holds."""
        return self.forward(x, training=training)

    def backward_inplace(self, grad_out, need_input_grad=True):
        """``backward(grad_out)``, free to write over ``grad_out``, which no one else holds."""
        return self.backward(grad_out, need_input_grad=need_input_grad)

    # freezing ---------------------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        """Whether the layer learns (``False``: frozen; see the class docstring)."""
        return self.__dict__.get("_trainable", True)

    @trainable.setter
    def trainable(self, value):
        if not isinstance(value, bool):
            raise TypeError(f"trainable must be True or False, got {value!r}")
        self._trainable = value
        for p in self._params.values():
            p.trainable = value

    def modules(self):
        """This layer and every layer nested in it, depth first (a leaf layer: just itself)."""
        yield self

    def named_modules(self, prefix=""):
        """``(dotted path, layer)`` of this layer and every layer nested in it, depth first
        (``""`` for this one, ``"2.0"`` for child 2's child 0)."""
        yield prefix, self

    def rng_state(self):
        """The layer's random stream as JSON-able data (``None``: it has none; `Dropout` has)."""
        return None  # noqa: RET501 - the documented answer of a layer without a stream

    # state ------------------------------------------------------------------------------------
    def parameters(self) -> list[Parameter]:
        return list(self._params.values())

    def named_parameters(self) -> dict[str, Parameter]:
        return dict(self._params)

    def buffers(self) -> dict[str, object]:
        """Non-trainable state (BatchNorm's running statistics): saved, moved, never optimised."""
        return dict(self._buffers)

    def set_buffer(self, name, value):
        self._buffers[name] = value

    def penalty(self):
        """Sum of the regularizer penalties of this layer's parameters (0.0 if none)."""
        total = 0.0
        for p in self._params.values():
            if p.regularizer is not None and p.trainable:  # a frozen weight is not penalised
                total = total + p.regularizer.penalty(p.value)
        return total

    def _no_cache(self):
        """The error of a backward without the forward pass it needs."""
        return RuntimeError(
            f"{type(self).__name__}.backward called before forward (Sequential.backward frees "
            "what forward cached: pass retain_cache=True to call it twice on one forward pass)")

    def clear_cache(self):
        """Forget what forward cached for backward (it holds device memory): every attribute
        whose name starts with ``_cache``. Sequential calls this twice a step, so the names are
        looked up again only when the layer's set of attributes has changed size."""
        d = self.__dict__
        names = d.get("_cleared_names")
        if names is None or names[0] != len(d):
            d["_cleared_names"] = None  # present before len(d) is taken
            names = d["_cleared_names"] = (len(d), tuple(k for k in d if k.startswith("_cache")))
        for key in names[1]:
            d[key] = None

    def to(self, device):
        """Move parameters and buffers to another backend (through the host if libraries differ)."""
        self._require_built()
        backend = get_backend(device)
        dtype = backend.dtype(self.backend.dtype_name(self.dtype))
        for p in self._params.values():
            p.value = backend.asarray(p.value, dtype=dtype)
            p.grad = None
            p.moves += 1
        for name, buf in self._buffers.items():
            self._buffers[name] = None if buf is None else backend.asarray(buf)
        self.dtype = dtype
        self.backend = backend
        self.xp = backend.xp
        self.clear_cache()
        return self

    # description ------------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        """An unbuilt layer from ``get_config()`` output (containers rebuild their children)."""
        return cls(**config)

    @classmethod
    def _from_entry(cls, config):
        """What `layer_from_config` builds from a config: an unbuilt layer (a model class whose
        ``from_config`` builds by default overrides this)."""
        return cls.from_config(config)

    def config_entry(self) -> dict:
        """``{"class", "config"}`` (plus ``"trainable": False`` for a frozen layer): how a
        container and a checkpoint describe this layer."""
        entry = {"class": type(self).__name__, "config": self.get_config()}
        if not self.trainable:
            entry["trainable"] = False
        return entry

    def state_shapes(self):
        """``{name: shape}`` of the parameters and buffers that building will create, known from
        the configuration alone (``None`` when the layer cannot say: a user's layer that builds
        state without declaring it). Checkpoint loading compares it with the stored arrays before
        it builds anything, so a doctored header cannot make it allocate a huge layer."""
        return {} if type(self)._build is Layer._build else None

    def output_shape(self, input_shape):
        """Shape of the output for an input of ``input_shape`` (batch dimension as ``None``)."""
        return input_shape

    def num_parameters(self) -> int:
        return sum(p.size for p in self._params.values())

    # copying ----------------------------------------------------------------------------------
    # ``copy.deepcopy`` and ``pickle`` (joblib, multiprocessing, scikit-learn's clone) copy the
    # arrays and the configuration; the namespace module is not copied but looked up again from
    # the backend, which itself pickles as its device string. (``pnn.load`` never unpickles: a
    # pickle is the user's own choice.)
    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("xp", None)
        state.pop("_cleared_names", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        backend = self.__dict__.get("backend")
        self.xp = None if backend is None else backend.xp  # (a model's xp follows its backend)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def layer_from_config(entry: dict) -> Layer:
    """Rebuild an (unbuilt) layer from ``{"class": name, "config": kwargs}`` (and an optional
    ``"trainable": False``), as `Layer.config_entry` writes it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class"), str):
        # a malformed config is a bad value, like any other missing key
        raise ValueError(  # noqa: TRY004
            f"a layer entry needs a 'class' name, got {entry!r}")
    name = entry["class"]
    cls = LAYER_CLASSES.get(name)
    if cls is None or name.startswith("_") or cls is Layer:
        # only public, registered classes: a private base (``_Elementwise``) is not a layer
        public = sorted(n for n, c in LAYER_CLASSES.items()
                        if not n.startswith("_") and c is not Layer)
        raise ValueError(f"unknown layer class {name!r}; known: {', '.join(public)}")
    if cls.forward is Layer.forward:
        raise ValueError(f"the layer class {name!r}, which does not implement forward, cannot "
                         "be used")
    config = entry.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(  # noqa: TRY004 - a malformed config is a bad value
            f"the config of a {entry['class']} entry must be a dict, got {config!r}")
    layer = cls._from_entry(config)
    trainable = entry.get("trainable", True)
    if trainable is not True:
        layer.trainable = trainable  # False, or a TypeError naming a value that is not a bool
    return layer
