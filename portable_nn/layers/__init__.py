"""Layers: each a forward pass and its hand-written local gradient."""

from .activations import (
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Step,
    Tanh,
)
from .base import LAYER_CLASSES, Layer, layer_from_config
from .dense import Dense
from .dropout import Dropout, mc_dropout_predict
from .normalization import BatchNorm
from .sequential import Sequential

__all__ = [
    "BatchNorm", "Dense", "Dropout", "Identity", "LAYER_CLASSES", "Layer", "LeakyReLU", "ReLU",
    "Sequential", "Sigmoid", "Softmax", "Softplus", "Step", "Tanh", "layer_from_config",
    "mc_dropout_predict",
]
