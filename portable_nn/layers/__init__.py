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
    "LAYER_CLASSES",
    "BatchNorm",
    "Dense",
    "Dropout",
    "Identity",
    "Layer",
    "LeakyReLU",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Step",
    "Tanh",
    "layer_from_config",
    "mc_dropout_predict",
]
