"""portable_nn: neural networks with hand-written backprop on the Python Array API.

The same layers, losses and optimizers run on NumPy (``device="cpu"``), CuPy (``device="cuda"``),
array-api-strict and PyTorch tensors. See README.md for a tour.
"""

from __future__ import annotations

import importlib

from . import backends, initializers, layers, losses, regularizers, training
from .backends import available_devices, get_backend, register_backend
from .gradcheck import GradcheckResult, gradcheck
from .layers import Sequential
from .parameter import Parameter

__version__ = "0.1.0"

# Submodules and names imported on first use, so `import portable_nn` stays light.
_LAZY_MODULES = (
    "callbacks", "checkpoint", "data", "datasets", "distributed", "estimators", "metrics", "monitor",
    "optimizers", "perceptron", "schedules",
)
_LAZY_NAMES = {
    "save": "checkpoint", "load": "checkpoint", "History": "training",
    "random_restarts": "training", "Perceptron": "perceptron", "Monitor": "monitor",
}

__all__ = [  # noqa: PLE0604 - the starred tuples hold names
    "GradcheckResult", "Parameter", "Sequential", "available_devices", "backends", "get_backend",
    "gradcheck", "initializers", "layers", "losses", "register_backend", "regularizers", "training",
    *_LAZY_MODULES, *_LAZY_NAMES,
]


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'portable_nn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
