"""dask arrays (through ``array_api_compat.dask.array``): lazy NumPy chunks on the CPU.

Every operation on a dask array adds tasks to its graph instead of computing. A parameter updated
step after step would drag the whole history of the run along (32 steps of ``fit`` took seconds
instead of milliseconds), so ``materialize``, which the optimizers call after each step, persists
the new values and state: their graphs shrink back to one task per chunk. dask arrays have
``__setitem__`` but no in-place operators (``a += b`` rebinds ``a``), so ``ops.writeable`` is false
for them and the generic code takes its functional path.
"""

from __future__ import annotations

import array_api_compat.dask.array as xp_dask
import dask
import dask.array as da
import numpy as np

from .base import Backend


class DaskBackend(Backend):
    name = "dask"

    def __init__(self):
        super().__init__(xp_dask, "cpu", "dask")

    def owns(self, x):
        return isinstance(x, da.Array)

    def _from_host(self, arr, dtype):
        # name=False: a random graph key instead of a hash of the whole array, which would cost
        # a pass over every batch
        return da.from_array(np.asarray(arr, dtype=dtype), name=False)

    def to_numpy(self, x):
        out = np.asarray(x.compute())
        # compute may hand back the host array the dask array was made from (or a read-only
        # one); what leaves as host data must be the caller's to write
        return out if out.flags.writeable else out.copy()

    def materialize(self, arrays):
        return list(dask.persist(*arrays)) if arrays else []

    def describe(self):
        return f"dask (dask {dask.__version__}, {dask.config.get('scheduler', 'threads')} scheduler)"
