"""The benchmark's target checks (benchmarks/run.py), on made-up results: each target is met or
missed on the right side of its threshold."""

from __future__ import annotations

from benchmarks.run import targets


def _res(vs_ref=1.0, vs_torch=1.3, gemm=0.9):
    return {"vs_reference": vs_ref, "vs_torch": vs_torch, "gemm_fraction": gemm}


def _by_target(checks):
    return {(c["config"], c["contender"], c["target"]): c for c in checks}


def test_cpu_targets_speed_and_fit_memory():
    results = {
        "mlp-sgd-b128": {"pnn.loop": _res(0.99, 1.3), "pnn.fit": _res(1.01, 1.2)},
        "mlp-sgd-b512": {"pnn.fit": _res(1.0, 1.1, 0.79)},
        "tiny-sgd-b4": {"pnn.loop": _res(0.5)},
    }
    memory = {"reference": {"mlp-sgd-b128": 3.0, "mlp-sgd-b512": 3.5, "tiny-sgd-b4": 0.0},
              "pnn.fit": {"mlp-sgd-b128": 3.6, "mlp-sgd-b512": 4.3, "tiny-sgd-b4": 0.0},
              "pnn.loop": {"mlp-sgd-b128": 9.9}}
    got = _by_target(targets(results, "cpu", memory))
    assert not got["mlp-sgd-b128", "pnn.loop", "samples/s >= 1.0x reference"]["met"]
    assert got["mlp-sgd-b128", "pnn.fit", "samples/s >= 1.0x reference"]["met"]
    assert got["mlp-sgd-b128", "pnn.loop", "samples/s >= 1.25x torch"]["met"]
    assert not got["mlp-sgd-b128", "pnn.fit", "samples/s >= 1.25x torch"]["met"]
    assert not got["mlp-sgd-b512", "pnn.fit", ">= 80% of the GEMM bound"]["met"]
    # 3.6 / 3.0 = 1.2 is within the target; 4.3 / 3.5 = 1.23 is not
    assert got["mlp-sgd-b128", "pnn.fit", "peak memory <= 1.2x reference"]["met"]
    mem512 = got["mlp-sgd-b512", "pnn.fit", "peak memory <= 1.2x reference"]
    assert not mem512["met"] and mem512["value"] == round(4.3 / 3.5, 3)
    # the target is fit's; the tiny net's memory (below a page) is not judged
    assert not any(t == "peak memory <= 1.2x reference" and (n == "pnn.loop" or c.startswith("tiny"))
                   for c, n, t in got)
    assert not got["tiny-sgd-b4", "pnn.loop", "time per step <= 1.5x reference"]["met"]  # 2.0x
    assert targets(results, "cpu") == [c for c in targets(results, "cpu", memory)
                                       if not c["target"].startswith("peak memory")]


def test_gpu_targets_torch_at_batch_4096_only():
    results = {"mlp-adam-b4096": {"pnn.loop": _res(0.9, 1.05), "pnn.fit": _res(0.9, 0.97)},
               "mlp-adam-b512": {"pnn.loop": _res(0.5, 0.5)}}
    got = _by_target(targets(results, "cuda"))
    assert set(got) == {("mlp-adam-b4096", "pnn.loop", "samples/s >= 1.0x torch"),
                        ("mlp-adam-b4096", "pnn.fit", "samples/s >= 1.0x torch")}
    assert got["mlp-adam-b4096", "pnn.loop", "samples/s >= 1.0x torch"]["met"]
    assert not got["mlp-adam-b4096", "pnn.fit", "samples/s >= 1.0x torch"]["met"]
