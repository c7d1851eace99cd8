"""allreduce_mean / broadcast / allreduce_sum_host on 2 ranks, for one backend (argv[1]).

Checks the values on both ranks, that the results are new arrays of the same backend, and the
number of MPI calls: one per (backend, dtype) of a call, never one per array."""

from __future__ import annotations

import sys

import numpy as np
from _common import CountingMPI, same_everywhere, world

from portable_nn.backends import get_backend, host_array

SHAPES = [("float64", (3, 4)), ("float32", (5,)), ("float64", ()), ("float32", (2, 3, 2)),
          ("float64", (1, 7))]


def values(rank, dtype, shape, k):
    """Rank-dependent host data: rank 1's is rank 0's times -3 plus 0.25 (exact in binary)."""
    base = (np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape) + k) / 8
    return base if rank == 0 else (base * -3 + 0.25).astype(dtype)


def main(device):
    comm = world()  # the same communicator on every call (init caches it)
    backend = get_backend(device)
    counter = comm.mpi_comm = CountingMPI(comm.mpi_comm)
    # JAX without x64 stores float64 as float32: expect what the backend really holds
    held = {dt: backend.dtype_name(backend.asarray(np.zeros(1, dt)).dtype)
            for dt in ("float32", "float64")}
    shapes = [(held[dt], shape) for dt, shape in SHAPES]
    n_dtypes = len(set(held.values()))

    # allreduce_mean over two dtypes: two Allreduce calls for five arrays
    host = [values(comm.rank, dt, shape, k) for k, (dt, shape) in enumerate(shapes)]
    arrays = [backend.asarray(h) for h in host]
    before = [host_array(a).copy() for a in arrays]
    out = comm.allreduce_mean(arrays)
    assert counter.calls == {"Allreduce": n_dtypes}, counter.calls
    for k, ((dt, shape), a, got) in enumerate(zip(shapes, arrays, out)):
        assert backend.owns(got), (k, type(got))
        assert tuple(got.shape) == shape and backend.dtype_name(got.dtype) == dt, (k, got.shape)
        want = (values(0, dt, shape, k) + values(1, dt, shape, k)) / np.asarray(2, dtype=dt)
        np.testing.assert_array_equal(host_array(got), want.astype(dt), err_msg=f"array {k}")
        np.testing.assert_array_equal(host_array(a), before[k])  # the argument is untouched
    same_everywhere(comm, out, "allreduce_mean")

    # one dtype: one call, whatever the number of arrays
    counter.calls.clear()
    same_dtype = [a for a, (dt, _) in zip(arrays, shapes) if dt == held["float64"]]
    comm.allreduce_mean(same_dtype)
    assert counter.calls == {"Allreduce": 1}, counter.calls

    # broadcast from rank 1, integers and floats: one Bcast per dtype
    counter.calls.clear()
    ints = backend.asarray(np.arange(6, dtype=np.int32).reshape(2, 3) * (comm.rank + 1))
    got = comm.broadcast([arrays[0], ints, arrays[2]], root=1)
    assert counter.calls == {"Bcast": 2}, counter.calls
    np.testing.assert_array_equal(host_array(got[0]), values(1, held["float64"], (3, 4), 0))
    np.testing.assert_array_equal(host_array(got[1]), np.arange(6).reshape(2, 3) * 2)
    np.testing.assert_array_equal(host_array(got[2]), values(1, held["float64"], (), 2))
    assert all(backend.owns(g) for g in got)
    same_everywhere(comm, got, "broadcast")

    # host counters
    assert comm.allreduce_sum_host([comm.rank + 1, 0.5]) == [3.0, 1.0]
    print(f"OK rank {comm.rank} {backend.device_string}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
