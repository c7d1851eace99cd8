"""Optimizers: turn the gradients that ``backward`` left in ``p.grad`` into parameter updates.

    optimizer = pnn.optimizers.Adam(learning_rate=1e-3)
    optimizer.step(model.parameters())          # once per batch, after model.backward(...)

Every optimizer follows PyTorch's published update rule (``torch.optim``), with ``g`` the gradient,
``θ`` the parameter, ``η`` the learning rate and ``t`` the number of steps taken (from 1):

- ``SGD``:     ``b ← μ b + g``;  ``θ ← θ − η b``  (Nesterov: ``θ ← θ − η (g + μ b)``);
  without momentum simply ``θ ← θ − η g``.
- ``AdaGrad``: ``s ← s + g²``;  ``θ ← θ − η g / (√s + ε)``.
- ``RMSprop``: ``v ← ρ v + (1 − ρ) g²``;  ``u = g / (√v + ε)``;  ``θ ← θ − η u``
  (with momentum: ``b ← μ b + u``;  ``θ ← θ − η b``).
- ``Adam``:    ``m ← β₁ m + (1 − β₁) g``;  ``v ← β₂ v + (1 − β₂) g²``;
  ``θ ← θ − η/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)``.
- ``AdamW``:   ``θ ← θ (1 − η λ)`` first (decoupled weight decay), then the Adam step.

``weight_decay=λ`` (all but AdamW) adds ``λ θ`` to the gradient (classic L2, as PyTorch), for every
parameter whose ``p.weight_decay`` is true. ``clipvalue=c`` clamps each gradient element to
``[−c, c]``; ``clipnorm=c`` then rescales all gradients of the step together so that their global
L2 norm is at most ``c``. Clipping acts on the raw gradients, before weight decay.

The learning rate ``η`` is ``lr_scale · learning_rate`` (``learning_rate`` a float, or a schedule
evaluated at ``iterations``); ``lr_scale`` (default 1) is what ``ReduceLROnPlateau`` lowers.

A step checks every parameter and gradient before it changes anything (``iterations``, state,
values): a missing gradient, a gradient that is not an array of the parameter's backend and device
or has another shape or dtype, or parameters of two backends raise an error naming the parameter.
Frozen parameters (``p.trainable`` false) are skipped entirely: no check, update, decay or state,
and they do not count in ``clipnorm``'s global norm. After the updates the backend's
``materialize`` hook sees every new value and state array once (lazy libraries evaluate there).

State (momentum buffers, moment estimates) lives per parameter on the parameter's device and is
created at its first step. ``iterations`` counts steps; a learning-rate schedule is evaluated at
``iterations`` (0 for the first step), so schedules count batches as in Keras. Adam's bias
correction uses this shared count.

Updates are written in place only where the backend's ``ops.writeable`` says the array is
mutated in place by its library, and even then the result is stored back (``state[k] = ...``,
``p.value = ...``): an augmented assignment on an array without in-place operators (dask) only
rebinds a name, so relying on it would silently lose the update.
"""

from __future__ import annotations

import contextlib
import math
import weakref

from . import schedules
from .backends import Backend, backend_of, get_backend, host_array
from .backends.ops import ops_for
from .parameter import Parameter

__all__ = ["SGD", "AdaGrad", "Adam", "AdamW", "Optimizer", "RMSprop", "from_config", "get"]


# validation ------------------------------------------------------------------------------------
def _number(value, argname):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argname} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{argname} must be finite, got {value!r}")
    return value


def _positive(value, argname):
    value = _number(value, argname)
    if value <= 0.0:
        raise ValueError(f"{argname} must be > 0, got {value!r}")
    return value


def _non_negative(value, argname):
    value = _number(value, argname)
    if value < 0.0:
        raise ValueError(f"{argname} must be >= 0, got {value!r}")
    return value


def _unit_interval(value, argname):
    value = _number(value, argname)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{argname} must be in [0, 1), got {value!r}")
    return value


def _optional_positive(value, argname):
    return None if value is None else _positive(value, argname)


# update primitives: in place where the array allows it, else functional. The in-place branch
# returns the array it wrote, and every caller stores what it gets back: on an array without
# in-place operators ``a *= b`` only rebinds ``a``, and the stored result is then the new array.
def _lerp(inplace, a, beta, b):
    """``beta * a + (1 - beta) * b``, written into ``a`` when ``inplace``."""
    if inplace:
        a *= beta
        a += (1.0 - beta) * b
        return a
    return beta * a + (1.0 - beta) * b


def _decay_add(inplace, a, beta, b):
    """``beta * a + b``, written into ``a`` when ``inplace``."""
    if inplace:
        a *= beta
        a += b
        return a
    return beta * a + b


def _accumulate(inplace, a, b):
    """``a + b``, written into ``a`` when ``inplace``."""
    if inplace:
        a += b
        return a
    return a + b


def _scale(inplace, a, c):
    """``c · a``, written into ``a`` when ``inplace``."""
    if inplace:
        a *= c
        return a
    return a * c


def _descend(inplace, p, lr, direction):
    """``θ ← θ − lr · direction``."""
    value = p.value
    if inplace:
        value -= lr * direction
    else:
        value = value - lr * direction
    p.value = value


# step checks (slow path: only runs when the fast comparisons in ``_gather`` found a difference)
def _backend_or_none(x):
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        return None
    try:
        return backend_of(x)
    except (TypeError, AttributeError, ValueError):
        return None


def _alike(v, g, kind, device):
    """``_gather``'s comparison for arrays that may lack a ``device`` attribute."""
    try:
        return (type(v) is kind and type(g) is kind and getattr(v, "device", None) == device
                and getattr(g, "device", None) == device and g.shape == v.shape
                and g.dtype == v.dtype)
    except AttributeError:
        return False


def _kind(x):
    return "None" if x is None else f"{type(x).__module__}.{type(x).__qualname__}"


def _diagnose(parameters, first, i):
    """Raise the error that ``parameters[i]`` deserves (``first``: index of the step's first
    trainable parameter, whose backend every other must share); return if nothing is wrong
    (an array of the same backend of another type, e.g. a NumPy scalar as a 0-d gradient)."""
    p = parameters[i]
    where = f"parameters[{i}] ({p.name!r})"
    backend = _backend_or_none(p.value)
    if backend is None:
        raise TypeError(f"{where}: value must be an array of a known backend, got "
                        f"{_kind(p.value)}")
    if first != i:
        q = parameters[first]
        other = _backend_or_none(q.value)
        if other != backend:
            raise ValueError(
                f"{where} is an array on {backend.device_string!r}, but parameters[{first}] "
                f"({q.name!r}) is on {getattr(other, 'device_string', '?')!r}: one optimizer step "
                "updates parameters of one backend; move the model with model.to(...)"
            )
    g = p.grad
    if g is None:
        raise ValueError(
            f"{where} has no gradient (grad is None): call model.backward(...) before "
            "optimizer.step(...), or freeze the parameter (trainable=False) to leave it out"
        )
    gb = _backend_or_none(g)
    if gb is None:
        raise TypeError(f"{where}: grad must be an array of {backend.device_string!r} like the "
                        f"parameter's value, got {_kind(g)}")
    if gb != backend:
        raise ValueError(f"{where}: grad is an array on {gb.device_string!r}, but the value is on "
                         f"{backend.device_string!r}")
    if tuple(g.shape) != tuple(p.value.shape):
        raise ValueError(f"{where}: grad has shape {tuple(g.shape)}, but the value has shape "
                         f"{tuple(p.value.shape)}")
    if g.dtype != p.value.dtype:
        raise TypeError(f"{where}: grad has dtype {g.dtype}, but the value has dtype "
                        f"{p.value.dtype}")


_IDENTITY_MATERIALIZE = Backend.materialize
_NO_CONTEXT = contextlib.nullcontext()


class Optimizer:
    """Base class: validation, clipping, weight decay, schedules, state bookkeeping.

    Subclasses define ``_slot_names()`` (the per-parameter state arrays), ``_init_slot`` when a slot
    does not start at zero, and ``_update(xp, p, g, state, lr, inplace)`` for their rule; an
    ``_update`` stores every array it computes back (``state[k] = ...``, ``p.value = ...``), also
    when ``inplace`` is true.
    """

    _decoupled_weight_decay = False
    _backend_cache = None  # (value type, device, Backend) of the last step

    def __init__(self, learning_rate=0.01, *, weight_decay=0.0, clipnorm=None, clipvalue=None):
        self.learning_rate = learning_rate
        self.weight_decay = _non_negative(weight_decay, "weight_decay")
        self.clipnorm = _optional_positive(clipnorm, "clipnorm")
        self.clipvalue = _optional_positive(clipvalue, "clipvalue")
        self._lr_scale = 1.0
        self.reset()

    # learning rate ------------------------------------------------------------------------------
    @property
    def learning_rate(self):
        """A float, or a ``schedules.Schedule`` evaluated at ``iterations``; may be reassigned."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, schedules.Schedule):
            self._learning_rate = value
        else:
            self._learning_rate = _positive(value, "learning_rate")

    @property
    def has_schedule(self) -> bool:
        """Whether ``learning_rate`` is a schedule (read-only)."""
        return isinstance(self._learning_rate, schedules.Schedule)

    @property
    def lr_scale(self) -> float:
        """A factor (finite, > 0; default 1.0) on the learning rate, constant or schedule:
        ``current_lr() = lr_scale · learning_rate(iterations)``. ``ReduceLROnPlateau`` lowers
        it; ``state_dict`` saves it."""
        return self._lr_scale

    @lr_scale.setter
    def lr_scale(self, value):
        self._lr_scale = _positive(value, "lr_scale")

    def current_lr(self) -> float:
        """The learning rate the next step uses: ``lr_scale`` times the float, or the schedule
        evaluated at ``iterations``."""
        lr = self._learning_rate
        if type(lr) is not float:
            lr = float(lr(self.iterations))
            if not 0.0 <= lr < math.inf:  # a user's schedule may skip Schedule's own check
                raise ValueError(f"the learning-rate schedule {self._learning_rate!r} gave {lr!r} "
                                 f"at step {self.iterations}; expected a finite number >= 0")
        return lr * self._lr_scale

    # the step -----------------------------------------------------------------------------------
    def _check_parameters(self, parameters, argname="parameters"):
        if isinstance(parameters, Parameter) or not isinstance(parameters, (list, tuple)):
            raise TypeError(
                f"{argname} must be a list of Parameter (e.g. model.parameters()), got "
                f"{type(parameters).__name__}"
            )
        for i, p in enumerate(parameters):
            if not isinstance(p, Parameter):
                raise TypeError(f"{argname}[{i}] must be a Parameter, got {type(p).__name__}")
        return parameters

    def _gather(self, parameters):
        """The trainable parameters, their gradients and their backend, every one checked.

        The common case costs a few type and attribute comparisons per parameter (this runs every
        step); only a difference sends a parameter to ``_diagnose`` for the error message."""
        if type(parameters) is not list:
            self._check_parameters(parameters)
        params, grads = [], []
        first, kind, device = -1, None, None
        for i, p in enumerate(parameters):
            if type(p) is not Parameter and not isinstance(p, Parameter):
                raise TypeError(f"parameters[{i}] must be a Parameter, got {type(p).__name__}")
            if not p.trainable:
                continue
            v, g = p.value, p.grad
            if first < 0:
                first, kind, device = i, type(v), getattr(v, "device", None)
            try:
                ok = (type(v) is kind and type(g) is kind and v.device == device
                      and g.device == device and g.shape == v.shape and g.dtype == v.dtype)
            except AttributeError:  # arrays without .device (dask), or no array at all
                ok = _alike(v, g, kind, device)
            if not ok:
                _diagnose(parameters, first, i)
            params.append(p)
            grads.append(g)
        if not params:
            return params, grads, None
        cache = self._backend_cache
        if cache is not None and cache[0] is kind and cache[1] == device:
            return params, grads, cache[2]
        backend = backend_of(params[0].value)
        self._backend_cache = (kind, device, backend)
        return params, grads, backend

    def step(self, parameters):
        """Update every trainable parameter of ``parameters`` (a list) from its gradient.

        Everything is checked before anything changes: each trainable parameter needs a gradient
        (``backward`` first) that is an array of its backend and device, of its shape and dtype,
        and all of them must live on one backend. Frozen parameters (``trainable=False``) are left
        out. A list without trainable parameters does nothing (``iterations`` does not advance).
        """
        params, grads, backend = self._gather(parameters)
        if backend is None:
            return
        # new state arrays go to the parameters' device, not the library's current one (CuPy)
        context = getattr(backend, "device_context", None)
        with _NO_CONTEXT if context is None else context():
            self._apply(backend, params, grads)

    def _apply(self, backend, params, grads):
        """The step proper, on checked ``params`` and ``grads`` of ``backend``."""
        xp = backend.xp
        lr = self.current_lr()
        if self.clipvalue is not None or self.clipnorm is not None:
            grads = self._clip(xp, grads)
        writeable = backend.ops.writeable
        self.iterations += 1
        wd = self.weight_decay
        slots = self._slot_names()  # none for plain SGD: no per-parameter bookkeeping at all
        for p, g in zip(params, grads):
            state = self._state_for(backend, p, slots) if slots else None
            inplace = writeable(p.value)
            if wd and p.weight_decay:
                if self._decoupled_weight_decay:
                    p.value = _scale(inplace, p.value, 1.0 - lr * wd)
                else:
                    g = g + wd * p.value
            self._update(xp, p, g, state, lr, inplace)
        self._materialize(backend, params, slots)

    def _materialize(self, backend, params, slots):
        """One ``backend.materialize`` call on every updated value and state array, whose results
        are stored (skipped where the backend keeps the base class's identity)."""
        hook = backend.materialize
        if getattr(hook, "__func__", None) is _IDENTITY_MATERIALIZE:
            return
        states = [self._state[p] for p in params] if slots else []
        arrays = [p.value for p in params]
        for state in states:
            arrays.extend(state.values())
        done = list(hook(arrays))
        if len(done) != len(arrays):
            raise RuntimeError(f"{backend!r}.materialize returned {len(done)} arrays for "
                               f"{len(arrays)}")
        it = iter(done)
        for p in params:
            p.value = next(it)
        for state in states:
            for k in state:
                state[k] = next(it)

    def _state_for(self, backend, p, slots):
        """``p``'s state arrays, made at its first step and moved along when ``model.to(...)``
        moved ``p`` since (a parameter never moved, ``moves == 0``, cannot have state from
        elsewhere, so the common case costs one lookup)."""
        state = self._state.get(p)
        if state is None:
            xp = backend.xp
            state = self._state[p] = {n: self._init_slot(xp, n, p.value) for n in slots}
            self._moves[p] = p.moves
        elif p.moves and self._moves.get(p) != p.moves:
            for k, v in state.items():
                state[k] = backend.asarray(v)
            self._moves[p] = p.moves
        return state

    def _clip(self, xp, grads):
        if self.clipvalue is not None:
            c = self.clipvalue
            grads = [xp.minimum(xp.maximum(g, -c), c) for g in grads]
        if self.clipnorm is not None:
            c = self.clipnorm
            total = xp.sum(grads[0] * grads[0])
            for g in grads[1:]:
                total = total + xp.sum(g * g)
            # c / max(‖g‖, c) is 1 below the threshold and c/‖g‖ above, with no host sync
            scale = c / xp.maximum(xp.sqrt(total), c)
            grads = [g * scale for g in grads]
        return grads

    def _slot_names(self) -> tuple:
        return ()

    def _init_slot(self, xp, name, value):
        return xp.zeros_like(value)

    def _update(self, xp, p, g, state, lr, inplace):
        raise NotImplementedError

    # copying: per-parameter state is keyed by weak references, which do not pickle; a copy or a
    # pickle (of a model with its optimizer, say) carries it as (parameter, state) pairs, and
    # the parameters travel with it, so the pairs find the copied parameters
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_state"] = list(self._state.items())
        state["_moves"] = list(self._moves.items())
        state["_backend_cache"] = None  # holds a device object; rebuilt at the next step
        return state

    def __setstate__(self, state):
        state = dict(state)
        slots, moves = state.pop("_state"), state.pop("_moves")
        self.__dict__.update(state)
        self._state = weakref.WeakKeyDictionary(slots)
        self._moves = weakref.WeakKeyDictionary(moves)

    # state --------------------------------------------------------------------------------------
    def reset(self):
        """Forget all per-parameter state and set ``iterations`` back to 0."""
        self.iterations = 0
        self._state = weakref.WeakKeyDictionary()
        self._moves = weakref.WeakKeyDictionary()  # Parameter.moves when its state was placed

    def state_dict(self, parameters) -> dict:
        """Host (NumPy) copy of the state: ``{"class", "config", "iterations", "lr_scale",
        "slots"}`` where ``slots[i]`` holds the arrays of ``parameters[i]`` (empty before its first
        step)."""
        self._check_parameters(parameters)
        slots = []
        for p in parameters:
            state = self._state.get(p)
            slots.append({} if state is None else
                         {k: host_array(v).copy() for k, v in state.items()})
        return {
            "class": type(self).__name__,
            "config": self.get_config(),
            "iterations": self.iterations,
            "lr_scale": self._lr_scale,
            "slots": slots,
        }

    def load_state_dict(self, state, parameters):
        """Restore ``state_dict()`` output for ``parameters`` (same order). Everything is checked
        before anything is assigned; the arrays go to each parameter's device and dtype. The
        hyper-parameters in ``state["config"]`` are not applied (use ``from_config`` for that);
        ``lr_scale`` is (1.0 for a state saved before it existed)."""
        self._check_parameters(parameters)
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        missing = [k for k in ("class", "iterations", "slots") if k not in state]
        if missing:
            raise ValueError(f"state is missing the keys {missing}")
        if state["class"] != type(self).__name__:
            raise ValueError(
                f"state is from a {state['class']!r} optimizer, this is {type(self).__name__!r}"
            )
        iterations = state["iterations"]
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"state['iterations'] must be an int >= 0, got {iterations!r}")
        lr_scale = _positive(state.get("lr_scale", 1.0), "state['lr_scale']")
        slots = state["slots"]
        if not isinstance(slots, (list, tuple)):
            raise TypeError(f"state['slots'] must be a list, got {type(slots).__name__}")
        if len(slots) != len(parameters):
            raise ValueError(
                f"state['slots'] must have one entry per parameter ({len(parameters)}), "
                f"got {len(slots)}"
            )
        names = set(self._slot_names())
        new_state, new_moves = weakref.WeakKeyDictionary(), weakref.WeakKeyDictionary()
        for i, (p, entry) in enumerate(zip(parameters, slots)):
            if not isinstance(entry, dict) or (entry and set(entry) != names):
                raise ValueError(
                    f"state['slots'][{i}] must be {{}} or have the keys {sorted(names)}, got "
                    f"{sorted(entry) if isinstance(entry, dict) else type(entry).__name__}"
                )
            if not entry:
                continue
            backend = backend_of(p.value)
            dtype = backend.dtype_name(p.value.dtype)
            converted = {}
            for k, v in entry.items():
                if tuple(getattr(v, "shape", ())) != p.shape:
                    raise ValueError(
                        f"state['slots'][{i}][{k!r}] has shape {tuple(getattr(v, 'shape', ()))}, "
                        f"expected {p.shape} (parameter {p.name!r})"
                    )
                # always copy: asarray may share memory with a host array (torch on the CPU,
                # array-api-strict), and the next step updates slots in place
                converted[k] = backend.xp.asarray(backend.asarray(v, dtype=dtype), copy=True)
            new_state[p] = converted
            new_moves[p] = p.moves
        self.iterations = iterations
        self._lr_scale = lr_scale
        self._state, self._moves = new_state, new_moves

    def to(self, backend):
        """Move every state array to ``backend`` (a device string or Backend)."""
        backend = get_backend(backend)
        for state in self._state.values():
            for k, v in state.items():
                state[k] = backend.asarray(v)
        return self

    # description --------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """JSON-able constructor keyword arguments (a schedule as ``{"class", "config"}``)."""
        lr = self._learning_rate
        cfg = {"learning_rate": lr if isinstance(lr, float) else schedules.serialize(lr)}
        cfg.update(self._hyper_config())
        cfg.update(weight_decay=self.weight_decay, clipnorm=self.clipnorm,
                   clipvalue=self.clipvalue)
        return cfg

    def _hyper_config(self) -> dict:
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()
                         if v is not None and not (k == "weight_decay" and v == 0.0))
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum, as ``torch.optim.SGD``.

    ``b ← μ b + g``;  ``θ ← θ − η b``, or with ``nesterov=True`` ``θ ← θ − η (g + μ b)``.
    With ``momentum=0`` it is the course's ``θ ← θ − η g`` and keeps no state.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, *,
                 clipnorm=None, clipvalue=None):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue)
        self.momentum = _unit_interval(momentum, "momentum")
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0")
        self.nesterov = nesterov

    def _slot_names(self):
        return ("momentum_buffer",) if self.momentum else ()

    def _update(self, xp, p, g, state, lr, inplace):
        mu = self.momentum
        if mu:
            buf = state["momentum_buffer"] = _decay_add(inplace, state["momentum_buffer"], mu, g)
            g = g + mu * buf if self.nesterov else buf
        _descend(inplace, p, lr, g)

    def _hyper_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class AdaGrad(Optimizer):
    """AdaGrad (Duchi et al. 2011), as ``torch.optim.Adagrad``: per-element rates shrinking with
    the sum of squared gradients. ``s ← s + g²``;  ``θ ← θ − η g / (√s + ε)``; ``s`` starts at
    ``initial_accumulator``."""

    def __init__(self, learning_rate=0.01, initial_accumulator=0.0, eps=1e-10, *,
                 weight_decay=0.0, clipnorm=None, clipvalue=None):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue)
        self.initial_accumulator = _non_negative(initial_accumulator, "initial_accumulator")
        self.eps = _positive(eps, "eps")

    def _slot_names(self):
        return ("sum",)

    def _init_slot(self, xp, name, value):
        return xp.full_like(value, self.initial_accumulator)

    def _update(self, xp, p, g, state, lr, inplace):
        s = state["sum"] = _accumulate(inplace, state["sum"], g * g)
        _descend(inplace, p, lr, g / (xp.sqrt(s) + self.eps))

    def _hyper_config(self):
        return {"initial_accumulator": self.initial_accumulator, "eps": self.eps}


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), as ``torch.optim.RMSprop`` (not centred).

    ``v ← ρ v + (1 − ρ) g²``;  ``u = g / (√v + ε)``;  ``θ ← θ − η u``; with ``momentum=μ``:
    ``b ← μ b + u``;  ``θ ← θ − η b``.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, eps=1e-8, momentum=0.0, *,
                 weight_decay=0.0, clipnorm=None, clipvalue=None):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue)
        self.rho = _unit_interval(rho, "rho")
        self.eps = _positive(eps, "eps")
        self.momentum = _unit_interval(momentum, "momentum")

    def _slot_names(self):
        return ("square_avg", "momentum_buffer") if self.momentum else ("square_avg",)

    def _update(self, xp, p, g, state, lr, inplace):
        v = state["square_avg"] = _lerp(inplace, state["square_avg"], self.rho, g * g)
        u = g / (xp.sqrt(v) + self.eps)
        if self.momentum:
            u = state["momentum_buffer"] = _decay_add(inplace, state["momentum_buffer"],
                                                      self.momentum, u)
        _descend(inplace, p, lr, u)

    def _hyper_config(self):
        return {"rho": self.rho, "eps": self.eps, "momentum": self.momentum}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as ``torch.optim.Adam``.

    ``m ← β₁ m + (1 − β₁) g``;  ``v ← β₂ v + (1 − β₂) g²``;
    ``θ ← θ − η/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)``. ``weight_decay=λ`` adds ``λ θ`` to ``g``
    (L2 regularisation; for decoupled decay use ``AdamW``).
    """

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, eps=1e-8, *,
                 weight_decay=0.0, clipnorm=None, clipvalue=None):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue)
        self.beta1 = _unit_interval(beta1, "beta1")
        self.beta2 = _unit_interval(beta2, "beta2")
        self.eps = _positive(eps, "eps")

    def _slot_names(self):
        return ("m", "v")

    def _update(self, xp, p, g, state, lr, inplace):
        # the rule is written once, in backends.ops (generic Array API, in place where the arrays
        # allow), where a backend may substitute a fused version tested against it
        p.value, state["m"], state["v"] = ops_for(xp).adam_update(
            p.value, g, state["m"], state["v"], lr=lr, beta1=self.beta1, beta2=self.beta2,
            eps=self.eps, t=self.iterations)

    def _hyper_config(self):
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as ``torch.optim.AdamW``:
    ``θ ← θ (1 − η λ)``, then the Adam step on the undecayed gradient ``g``."""

    _decoupled_weight_decay = True

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                 *, clipnorm=None, clipvalue=None):
        super().__init__(learning_rate, beta1, beta2, eps, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue)


_REGISTRY = {"sgd": SGD, "adagrad": AdaGrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}
_CLASSES = {cls.__name__: cls for cls in _REGISTRY.values()}


def get(spec) -> Optimizer:
    """An optimizer from an instance, a name (``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``,
    ``"adagrad"``, any case; default hyper-parameters) or a ``{"class", "config"}`` dict."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, dict):
        return from_config(spec)
    if isinstance(spec, str):
        cls = _REGISTRY.get(spec.lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {spec!r}; expected one of {', '.join(_REGISTRY)}")
        return cls()
    raise TypeError(
        f"optimizer must be an Optimizer, a name such as 'adam', or a config dict, got "
        f"{type(spec).__name__}"
    )


def from_config(d) -> Optimizer:
    """Rebuild an optimizer from ``{"class": name, "config": kwargs}`` (``state_dict()`` output
    works too; its state is not loaded)."""
    cls, kwargs = schedules.class_and_config(d, _CLASSES, "an optimizer")
    lr = kwargs.get("learning_rate")
    if isinstance(lr, dict):
        kwargs["learning_rate"] = schedules.from_config(lr)
    return cls(**kwargs)
