"""What happens when one rank fails, on 2 ranks (argv[1] picks the case).

- ``agree``: rank 1 alone passes an error to ``comm.agree``; both ranks must raise with its
  message (and agree on no error must return). Prints ``RAISED rank R: ...`` on each rank.
- ``abort``: rank 1 calls ``comm.abort("boom")`` while rank 0 waits in a barrier and then sleeps;
  both must end within seconds (the test's timeout) with a non-zero status.
- ``missing``: rank 1 has no gradient for one parameter: it counts as zero there, both ranks
  update it alike; a parameter without a gradient anywhere is left alone.
- ``mismatch``: the ranks freeze different parameters of the same size; DistributedOptimizer.step
  must raise a ValueError on both ranks and leave every parameter as it was.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from _common import digest, distributed, pnn, same_everywhere, world

from portable_nn.backends import host_array


def agree(comm):
    assert comm.agree(None) is None
    error = ValueError("shard 3 is empty on this rank") if comm.rank == 1 else None
    try:
        comm.agree(error)
    except ValueError as exc:
        print(f"RAISED rank {comm.rank}: {exc}", flush=True)
    else:
        raise AssertionError("agree returned although rank 1 failed")
    # both fail: the lowest rank's message, and a count of the others; not a ValueError
    try:
        comm.agree(OSError(f"disk full on {comm.rank}"))
    except RuntimeError as exc:
        assert str(exc) == "rank 0: disk full on 0 (and 1 more rank(s) failed)", str(exc)
    comm.barrier()


def abort(comm):
    if comm.rank == 1:
        comm.abort("boom")
    comm.barrier()
    time.sleep(300)  # only MPI_Abort can end this rank within the test's timeout


def two_layers():
    model = pnn.Sequential(pnn.layers.Dense(2, 2), pnn.layers.Dense(2, 2), device="cpu",
                           dtype="float64", seed=0)
    x = model.backend.asarray([[1.0, 2.0]], dtype="float64")
    model.backward(model.forward(x, training=True), need_input_grad=False)
    return model.parameters()


def missing(comm):
    """Rank 1 has no gradient for the first bias: it counts as zero there, on both ranks."""
    params = two_layers()
    g0 = np.asarray(host_array(params[1].grad)).copy()  # the same on both ranks (same data)
    b0 = np.asarray(host_array(params[1].value)).copy()
    if comm.rank == 1:
        params[1].grad = None
    distributed.DistributedOptimizer(pnn.optimizers.SGD(0.5), comm).step(params)
    np.testing.assert_array_equal(host_array(params[1].grad), g0 / 2)
    np.testing.assert_array_equal(host_array(params[1].value), b0 - 0.5 * (g0 / 2))
    same_everywhere(comm, [p.value for p in params], "after a step with a gradient missing")
    # no gradient anywhere: left alone on both ranks
    params = two_layers()
    params[3].grad = None
    b3 = np.asarray(host_array(params[3].value)).copy()
    distributed.DistributedOptimizer(pnn.optimizers.SGD(0.5), comm).step(params)
    assert params[3].grad is None
    np.testing.assert_array_equal(host_array(params[3].value), b3)
    print(f"OK rank {comm.rank}", flush=True)


def mismatch(comm):
    """Rank 0 freezes one weight, rank 1 the other (same buffer size, different layout)."""
    params = two_layers()
    params[2 * comm.rank].trainable = False
    before = digest([p.value for p in params])
    opt = distributed.DistributedOptimizer(pnn.optimizers.SGD(0.1), comm)
    try:
        opt.step(params)
    except ValueError as exc:
        assert "disagree" in str(exc), str(exc)
        assert digest([p.value for p in params]) == before, "a parameter changed"
        assert opt.iterations == 0
        print(f"RAISED rank {comm.rank}: {exc}", flush=True)
    else:
        raise AssertionError("step did not notice that the ranks step different models")


if __name__ == "__main__":
    {"agree": agree, "abort": abort, "missing": missing, "mismatch": mismatch}[sys.argv[1]](world())
