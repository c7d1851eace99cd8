"""PyTorch tensors (CPU or CUDA) through array-api-compat; no autograd is used."""

from __future__ import annotations

import array_api_compat.torch as xp_torch
import torch

from .base import NO_CONTEXT, Backend, DeviceRNG


class TorchRNG(DeviceRNG):
    def __init__(self, backend, seed=None):
        self.backend = backend
        self._gen = torch.Generator(device=backend.device)
        if seed is None:
            self._gen.seed()
        else:
            self._gen.manual_seed(int(seed))

    def _dt(self, dtype):
        return self.backend.dtype(dtype)

    def uniform(self, shape, low=0.0, high=1.0, dtype="float32"):
        u = torch.rand(shape, generator=self._gen, dtype=self._dt(dtype), device=self.backend.device)
        return u if (low, high) == (0.0, 1.0) else u * (high - low) + low

    def normal(self, shape, mean=0.0, std=1.0, dtype="float32"):
        z = torch.randn(shape, generator=self._gen, dtype=self._dt(dtype), device=self.backend.device)
        return z if (mean, std) == (0.0, 1.0) else z * std + mean

    def bernoulli(self, shape, p, dtype="float32"):
        return (self.uniform(shape, dtype=dtype) < p).to(self._dt(dtype))


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, device="cpu"):
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        super().__init__(xp_torch, dev, f"torch:{dev}")

    def owns(self, x):
        return isinstance(x, torch.Tensor) and x.device == self.device

    def asarray(self, x, dtype=None):
        # Detached at the door, always: a tensor that requires grad would otherwise carry its
        # autograd history into the parameters, and every step's graph would be kept alive.
        if isinstance(x, torch.Tensor):
            dt = None if dtype is None else self.dtype(dtype)
            return x.detach().to(device=self.device, dtype=dt)
        return super().asarray(x, dtype)

    def admit(self, x):
        return x.detach() if x.requires_grad else x

    def to_numpy(self, x):
        return x.detach().cpu().numpy()

    def device_context(self):
        if self.device.type == "cuda":
            return torch.cuda.device(self.device)
        return NO_CONTEXT

    def _from_host(self, arr, dtype):
        return torch.as_tensor(arr, dtype=dtype, device=self.device)

    def rng(self, seed=None):
        return TorchRNG(self, seed)

    def synchronize(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def describe(self):
        if self.device.type != "cuda":
            return self.device_string
        props = torch.cuda.get_device_properties(self.device)
        return f"{self.device_string} ({props.name}, {props.total_memory / 2**30:.1f} GiB)"
