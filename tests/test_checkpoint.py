"""save/load: bit-identical round trips across backends, optimizer state, refusal of bad files."""

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import checkpoint
from portable_nn.layers import BatchNorm, Dense, Dropout, ReLU

DEVICES = ["cpu", "array_api_strict", "torch:cpu"]


def trained(device="cpu", dtype="float32", optimizer="adam"):
    """A model with every kind of state (regularizer, BatchNorm buffers, Dropout), trained 2 epochs."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 3))
    y = (X[:, 0] > 0).astype(int)
    model = pnn.Sequential(Dense(3, 6, regularizer=pnn.regularizers.L2(1e-3)), BatchNorm(6),
                           ReLU(), Dropout(0.2), Dense(6, 2), device=device, dtype=dtype, seed=0)
    model.fit(X, y, loss="cross_entropy", optimizer=optimizer, epochs=2, batch_size=16,
              verbose=0, seed=0)
    return model, X, y


def usable(device):
    """Whether this machine can build ``device``."""
    try:
        pnn.get_backend(device)
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_bit_identical_across_backends(backend, tmp_path, dtype):
    model, X, _ = trained(backend, dtype)
    path = tmp_path / "m.npz"
    assert pnn.save(model, path) == str(path)
    ref = model.predict(X)
    state = model.state_dict()
    for device in DEVICES:
        if not usable(device):
            continue
        loaded = pnn.load(path, device=device)
        assert loaded.device == pnn.get_backend(device).device_string
        assert loaded.dtype_name == dtype
        assert loaded.get_config() == model.get_config()
        loaded_state = loaded.state_dict()
        assert loaded_state.keys() == state.keys()      # buffers (running stats) included
        for k in state:
            assert loaded_state[k].dtype == state[k].dtype
            np.testing.assert_array_equal(loaded_state[k], state[k])
        # bit-identical to the saved model moved to that device (two libraries' matmuls may
        # round differently in the last bit, so the comparison is on the same device)
        moved = pnn.load(path, device=backend.device_string).to(device)
        np.testing.assert_array_equal(loaded.predict(X), moved.predict(X))
        if device == backend.device_string:
            np.testing.assert_array_equal(loaded.predict(X), ref)
        np.testing.assert_allclose(loaded.predict(X), ref, rtol=1e-5, atol=1e-6)


def test_optimizer_state_restored_and_training_continues_identically(tmp_path):
    model, X, y = trained(dtype="float64")
    path = tmp_path / "m.npz"
    pnn.save(model, path)
    loaded = pnn.load(path)
    opt, opt2 = model.optimizer, loaded.optimizer
    assert type(opt2) is type(opt) and opt2.get_config() == opt.get_config()
    assert opt2.iterations == opt.iterations == 6
    s1, s2 = opt.state_dict(model.parameters()), opt2.state_dict(loaded.parameters())
    for a, b in zip(s1["slots"], s2["slots"]):
        assert a.keys() == b.keys() and a
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    # the loss comes back too: evaluate and fit need not name it
    assert loaded.evaluate(X, y) == model.evaluate(X, y)
    # without Dropout's random masks, one more epoch must agree exactly
    for m in (model, loaded):
        m.layers[3].p = 0.0
        m.fit(X, y, epochs=1, batch_size=16, verbose=0, seed=5)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)


def test_optimizer_choice_and_header(tmp_path):
    model, _, _ = trained(optimizer=pnn.optimizers.SGD(0.1, momentum=0.9))
    pnn.save(model, tmp_path / "no_opt.npz", optimizer=False)
    assert pnn.load(tmp_path / "no_opt.npz").optimizer is None
    pnn.save(model, tmp_path / "with.npz")
    with zipfile.ZipFile(tmp_path / "with.npz") as z:
        names = sorted(z.namelist())
        header = json.loads(np.lib.format.read_array(z.open("__portable_nn__.npy")).tobytes())
    assert header["format"] == checkpoint.FORMAT and header["version"] == checkpoint.VERSION
    assert header["dtype"] == "float32" and header["optimizer"]["class"] == "SGD"
    assert "param/0.weight.npy" in names and "buffer/1.running_mean.npy" in names
    assert "optim/0/momentum_buffer.npy" in names
    assert pnn.load(tmp_path / "with.npz").optimizer.momentum == 0.9


def test_save_is_atomic(tmp_path, monkeypatch):
    model, _, _ = trained()
    path = tmp_path / "m.npz"
    pnn.save(model, path)
    good = path.read_bytes()

    def broken_savez(f, **arrays):
        """Fails half-way, like a full disk."""
        f.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        pnn.save(model, path)
    assert path.read_bytes() == good                  # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["m.npz"]          # and no temporary file is left behind


def test_load_rejects_a_bad_device_as_the_callers_error(tmp_path):
    model, _, _ = trained()
    pnn.save(model, tmp_path / "m.npz")
    with pytest.raises(ValueError, match="unknown device"):
        pnn.load(tmp_path / "m.npz", device="gpu7")
    with pytest.raises(FileNotFoundError):
        pnn.load(tmp_path / "missing.npz")


class _Trap:
    """Unpickling this would create the file ``flag``: proof that code from a file ran."""

    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return (open, (self.flag, "w"))


def _write_zip(path, members):
    """A zip with the given member names and bytes."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _npy_bytes(arr, allow_pickle=False):
    """``arr`` as the bytes of a .npy file."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_malicious_files_never_run_code(tmp_path):
    model, _, _ = trained()
    good = tmp_path / "good.npz"
    pnn.save(model, good)
    flag = tmp_path / "pwned"
    trap = np.empty(1, dtype=object)
    trap[0] = _Trap(str(flag))
    with zipfile.ZipFile(good) as z:
        members = {n: z.read(n) for n in z.namelist()}
    cases = {
        # an object array (pickle inside .npy) as the header, and as a parameter
        "obj_header.npz": {**members, "__portable_nn__.npy": _npy_bytes(trap, True)},
        "obj_param.npz": {**members, "param/0.weight.npy": _npy_bytes(trap, True)},
        # a raw pickle stored as a member
        "raw_pickle.npz": {**members, "param/0.bias.npy": pickle.dumps(_Trap(str(flag)))},
    }
    for name, content in cases.items():
        _write_zip(tmp_path / name, content)
        with pytest.raises(ValueError, match="cannot load"):
            pnn.load(tmp_path / name)
    # a plain pickle file named .npz
    (tmp_path / "plain.npz").write_bytes(pickle.dumps(_Trap(str(flag))))
    with pytest.raises(ValueError, match="not an .npz archive"):
        pnn.load(tmp_path / "plain.npz")
    assert not flag.exists()


def _header_variant(tmp_path, good, name, change):
    """A copy of ``good`` whose JSON header is replaced by ``change(header)``."""
    with zipfile.ZipFile(good) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = json.loads(np.lib.format.read_array(
        __import__("io").BytesIO(members["__portable_nn__.npy"])).tobytes())
    text = change(header)
    members["__portable_nn__.npy"] = _npy_bytes(np.frombuffer(text.encode(), dtype=np.uint8))
    _write_zip(tmp_path / name, members)
    return tmp_path / name


def test_files_from_elsewhere_are_refused_clearly(tmp_path):
    model, _, _ = trained()
    good = tmp_path / "good.npz"
    pnn.save(model, good)
    data = good.read_bytes()
    cases = [
        ("random.npz", os.urandom(2000), "not an .npz archive"),
        ("empty.npz", b"", "not an .npz archive"),
        ("truncated.npz", data[: len(data) // 2], "truncated, corrupted"),
        ("single.npz", _npy_bytes(np.ones(3)), "single .npy"),
    ]
    for name, content, message in cases:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=message) as info:
            pnn.load(tmp_path / name)
        assert name in str(info.value)            # the message names the file
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    with pytest.raises(ValueError, match="no '__portable_nn__' header"):
        pnn.load(tmp_path / "other.npz")
    _write_zip(tmp_path / "zip.npz", {"readme.txt": "hello"})
    with pytest.raises(ValueError, match="not a .npy array"):
        pnn.load(tmp_path / "zip.npz")
    variants = [
        (lambda h: "{not json", "not valid JSON"),
        (lambda h: json.dumps({**h, "format": "keras"}), "does not name the format"),
        (lambda h: json.dumps({**h, "version": 99}), "newer than this library"),
        (lambda h: json.dumps({**h, "parameters": h["parameters"] + ["9.weight"]}), "missing"),
        (lambda h: json.dumps({**h, "model": {"layers": [{"class": "os.system"}]}}),
         "unknown layer class"),
        (lambda h: json.dumps({**h, "parameters": h["parameters"][1:]}), "does not name"),
    ]
    for i, (change, message) in enumerate(variants):
        path = _header_variant(tmp_path, good, f"h{i}.npz", change)
        with pytest.raises(ValueError, match=message):
            pnn.load(path)


def test_every_single_byte_corruption_is_caught_or_harmless(tmp_path):
    """Flip bytes across the whole file: load either refuses it with ValueError or (when the
    byte was in zip bookkeeping that is not used) gives back exactly the saved model."""
    model, X, _ = trained()
    good = tmp_path / "good.npz"
    pnn.save(model, good)
    data = good.read_bytes()
    ref = model.predict(X)
    bad = tmp_path / "bad.npz"
    refused = 0
    for pos in range(0, len(data), 11):
        flipped = bytearray(data)
        flipped[pos] ^= 0x5A
        bad.write_bytes(bytes(flipped))
        try:
            loaded = pnn.load(bad)
        except ValueError:
            refused += 1
            continue
        np.testing.assert_array_equal(loaded.predict(X), ref)
    assert refused > 0.6 * (len(data) // 11)


def test_a_header_declaring_huge_layers_is_refused_before_anything_is_built(tmp_path,
                                                                             monkeypatch):
    """The layers' declared shapes are compared with the stored arrays before any layer is
    built: a doctored header cannot make load allocate terabytes."""
    model, _, _ = trained()
    good = tmp_path / "good.npz"
    pnn.save(model, good)
    built = []
    monkeypatch.setattr(pnn.layers.Dense, "_build", lambda self, rng: built.append(self))

    def huge(h):
        h["model"]["layers"][0]["config"]["out_features"] = 10**6
        h["model"]["layers"][1]["config"]["features"] = 10**6
        h["model"]["layers"][4]["config"]["in_features"] = 10**6
        return json.dumps(h)

    path = _header_variant(tmp_path, good, "huge.npz", huge)
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(3, 6\).* declares \(3, 1000000\)"):
        pnn.load(path)
    assert built == []

    def abstract_loss(h):
        h["loss"] = {"class": "Loss", "config": {}}
        return json.dumps(h)

    monkeypatch.undo()
    with pytest.raises(ValueError, match="unknown loss"):
        pnn.load(_header_variant(tmp_path, good, "loss.npz", abstract_loss))
    pnn.load(good)  # the untouched file still loads
