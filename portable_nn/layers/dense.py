"""`Dense`: the fully connected layer ``y = x @ W + b``."""

from __future__ import annotations

from .. import initializers, regularizers
from .base import Layer, _positive_int


class Dense(Layer):
    """Fully connected layer in the course's notation.

    Forward:  ``y = x W + b`` with ``x`` of shape (n, k), ``W`` (k, m), ``b`` (m,), ``y`` (n, m).

    Local gradient, for ``g = dL/dy`` of shape (n, m):

    - ``dL/dW = x^T g``        (k, m)
    - ``dL/db = sum_i g_i``     (m,)
    - ``dL/dx = g W^T``         (n, k), skipped when ``need_input_grad=False``

    A frozen parameter (``trainable`` False) gets no gradient: its product is skipped.

    ``init`` / ``bias_init`` name an initializer (see ``portable_nn.initializers``); ``regularizer``
    (``L1``/``L2``) penalises ``W`` only.
    """

    owns_output = True  # x @ W + b is a new array; Dense keeps x, not y
    owns_input_grad = True  # g W^T is a new array

    def __init__(self, in_features, out_features, bias=True, init="glorot_uniform",
                 bias_init="zeros", regularizer=None):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self.use_bias = bias
        self.init = initializers.get(init, "init")
        self.bias_init = initializers.get(bias_init, "bias_init")
        self.regularizer = regularizers.get(regularizer)
        self._cache_x = None

    def state_shapes(self):
        shapes = {"weight": (self.in_features, self.out_features)}
        if self.use_bias:
            shapes["bias"] = (self.out_features,)
        return shapes

    def _build(self, rng):
        shapes = self.state_shapes()
        fans = (self.in_features, self.out_features)  # the bias is drawn with its weight's fans
        self.add_parameter("weight", self.init(shapes["weight"], rng, fans=fans),
                           regularizer=self.regularizer)
        if self.use_bias:
            self.add_parameter("bias", self.bias_init(shapes["bias"], rng, fans=fans))
        else:
            self.bias = None

    def forward(self, x, training=False):
        self._require_built()
        try:
            ndim = x.ndim
        except AttributeError:
            raise TypeError(f"Dense.forward expects an array of the layer's backend, got "
                            f"{type(x).__name__}; convert it with layer.backend.asarray(x)") from None
        if ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"Dense({self.in_features}, {self.out_features}) expects input of shape "
                f"(batch, {self.in_features}), got {tuple(x.shape)}"
            )
        y = x @ self.weight.value
        if self.use_bias:
            y += self.bias.value
        self._cache_x = x
        return y

    def backward(self, grad_out, need_input_grad=True):
        x = self._cache_x
        if x is None:
            raise self._no_cache()
        if tuple(grad_out.shape) != (x.shape[0], self.out_features):
            raise ValueError(
                f"Dense.backward expects grad_out of shape {(x.shape[0], self.out_features)}, "
                f"got {tuple(grad_out.shape)}"
            )
        w = self.weight
        ops = self.backend.ops
        # the previous gradient arrays may be written over, as in PyTorch: see Parameter; a
        # frozen parameter (trainable False) gets no gradient at all
        if w.trainable:
            w.grad = ops.matmul_into(x.T, grad_out, w.grad)
            if w.regularizer is not None:
                w.grad = w.grad + w.regularizer.gradient(w.value)
        if self.use_bias and self.bias.trainable:
            self.bias.grad = ops.sum_rows_into(grad_out, self.bias.grad)
        return grad_out @ w.value.T if need_input_grad else None

    def output_shape(self, input_shape):
        return (*input_shape[:-1], self.out_features)

    def get_config(self):
        cfg = {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.use_bias,
            "init": self.init.get_config(),
            "bias_init": self.bias_init.get_config(),
        }
        if self.regularizer is not None:
            cfg["regularizer"] = self.regularizer.get_config()
        return cfg
