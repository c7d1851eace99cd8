"""The benchmark's target checks (benchmarks/run.py), on made-up results: each target is met or
missed on the right side of its threshold."""

from __future__ import annotations

import pytest

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


def test_cnn_target_is_torch_on_one_thread_or_a_gpu():
    results = {"cnn-sgd-b128": {"pnn.loop": _res(None, 1.02), "pnn.fit": _res(None, 0.97)},
               "mlp-sgd-b128": {"pnn.loop": _res(1.1, 1.3)}}
    got = _by_target(targets(results, "cpu", threads=1))
    cnn = {k: c for k, c in got.items() if k[0].startswith("cnn")}
    # the CNN has no hand-written reference: only the torch target, none of the MLP's
    assert set(cnn) == {("cnn-sgd-b128", "pnn.loop", "samples/s >= 1.0x torch (1 thread)"),
                        ("cnn-sgd-b128", "pnn.fit", "samples/s >= 1.0x torch (1 thread)")}
    assert cnn["cnn-sgd-b128", "pnn.loop", "samples/s >= 1.0x torch (1 thread)"]["met"]
    assert not cnn["cnn-sgd-b128", "pnn.fit", "samples/s >= 1.0x torch (1 thread)"]["met"]
    assert ("mlp-sgd-b128", "pnn.loop", "samples/s >= 1.0x reference") in got
    # with several threads the CNN's speed is reported, not judged
    assert not any(c.startswith("cnn") for c, _, _ in _by_target(targets(results, "cpu",
                                                                           threads=2)))
    gpu = _by_target(targets({"cnn-sgd-b1024": {"pnn.loop": _res(None, 0.8)}}, "cuda"))
    assert set(gpu) == {("cnn-sgd-b1024", "pnn.loop", "samples/s >= 1.0x torch")}
    assert not gpu["cnn-sgd-b1024", "pnn.loop", "samples/s >= 1.0x torch"]["met"]


def test_cnn_case_runs_with_its_own_contenders():
    from benchmarks.run import CNN_CONTENDERS, CONTENDERS, _contenders, configs

    cases = {c["name"]: c for c in configs("cpu", quick=True)}
    assert _contenders(cases["cnn-sgd-b128"], CONTENDERS) == list(CNN_CONTENDERS)
    assert _contenders(cases["mlp-sgd-b128"], CONTENDERS) == list(CONTENDERS)
    assert "cnn-sgd-b1024" in {c["name"] for c in configs("cuda", quick=True)}


def test_cnn_contenders_train_the_same_lenet():
    """pnn and torch build the same LeNet-5 (same parameter shapes, 61,706 values) on rows of
    784 pixels."""
    torch = pytest.importorskip("torch")
    import numpy as np

    from benchmarks.run import Torch, _pnn_model, configs

    cfg = next(c for c in configs("cpu", quick=True) if c["name"].startswith("cnn"))
    model, _, _ = _pnn_model(cfg, "cpu")
    X = np.zeros((cfg["batch"], 784), dtype=np.float32)
    y = np.zeros(cfg["batch"], dtype=np.int64)
    ref = Torch(cfg, X, y, "cpu").model
    # conv weights in torch's layout; Dense's (in, out) is nn.Linear's (out, in) transposed
    assert [p.shape if len(p.shape) != 2 else p.shape[::-1] for p in model.parameters()] == \
        [tuple(p.shape) for p in ref.parameters()]
    assert model.num_parameters() == sum(p.numel() for p in ref.parameters()) == 61706
    assert model.forward(X).shape == tuple(ref(torch.as_tensor(X)).shape) == (cfg["batch"], 10)
