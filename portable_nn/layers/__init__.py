"""Layers: each a forward pass and its hand-written local gradient."""

from .activations import (
    ELU,
    GELU,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Step,
    Tanh,
)
from .base import LAYER_CLASSES, Layer, layer_from_config
from .containers import Concatenate, Container, Residual, Sequential
from .conv import Conv1D, Conv2D
from .dense import Dense
from .dropout import Dropout, mc_dropout_predict
from .embedding import Embedding
from .normalization import BatchNorm, LayerNorm
from .pooling import (
    AvgPool1D,
    AvgPool2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    MaxPool1D,
    MaxPool2D,
)
from .reshape import Flatten, Permute, Reshape

__all__ = [
    "ELU",
    "GELU",
    "LAYER_CLASSES",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNorm",
    "Concatenate",
    "Container",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "Identity",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "MaxPool1D",
    "MaxPool2D",
    "Permute",
    "ReLU",
    "Reshape",
    "Residual",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Step",
    "Tanh",
    "layer_from_config",
    "mc_dropout_predict",
]
