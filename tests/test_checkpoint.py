"""save/load: the safetensors layout, bit-identical round trips across backends, optimizer state,
the legacy .npz, dtype rules, warnings, file modes, refusal of bad files."""

import hashlib
import io
import json
import os
import re
import warnings
import zipfile

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import checkpoint
from portable_nn.layers import BatchNorm, Dense, Dropout, ReLU

DEVICES = ["cpu", "array_api_strict", "torch:cpu"]  # the backend fixture adds its own column
CODES = {"float16": "F16", "float32": "F32", "float64": "F64", "int64": "I64", "uint8": "U8",
         "bool": "BOOL"}


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


# reading and writing the layout by hand, as another program would ---------------------------------
def read_st(path):
    """(tensor table with ``__metadata__``, {name: array}) of a safetensors file, parsed here."""
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    table = json.loads(data[8:8 + n])
    arrays = {}
    for name, e in table.items():
        if name != "__metadata__":
            b, end = e["data_offsets"]
            dt = np.dtype({v: k for k, v in CODES.items()}[e["dtype"]]).newbyteorder("<")
            arrays[name] = np.frombuffer(data[8 + n + b:8 + n + end], dt).reshape(e["shape"])
    return table, arrays


def write_st(path, header, arrays, digest=None):
    """A safetensors file holding ``arrays`` and our ``header`` (a dict), with a correct checksum
    unless ``digest`` is given: what a doctored file looks like once its checksum is redone."""
    text = json.dumps(header)
    if digest is None:
        h = hashlib.sha256(text.encode())
        for name in sorted(arrays):
            h.update(np.ascontiguousarray(arrays[name]).tobytes())
        digest = h.hexdigest()
    table, off = {"__metadata__": {"portable_nn": text, "portable_nn.sha256": digest}}, 0
    for name, a in arrays.items():
        code = CODES[a.dtype.name]
        table[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    blob = json.dumps(table).encode()
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little") + blob)
        for a in arrays.values():
            f.write(np.ascontiguousarray(a).tobytes())
    return path


def variant(path, out, change_header=None, change_arrays=None):
    """A copy of the checkpoint ``path`` with its header and/or arrays changed (checksum redone)."""
    table, arrays = read_st(path)
    header = json.loads(table["__metadata__"]["portable_nn"])
    arrays = dict(arrays)
    if change_header:
        header = change_header(header) or header
    if change_arrays:
        change_arrays(arrays)
    return write_st(out, header, arrays)


def write_legacy(path, src):
    """The format-1 .npz that portable_nn wrote before the safetensors layout (np.savez of the
    arrays and the JSON header as a uint8 array), made from the checkpoint ``src``."""
    table, arrays = read_st(src)
    header = json.loads(table["__metadata__"]["portable_nn"])
    header["version"] = 1
    text = json.dumps(header).encode()
    np.savez(path, __portable_nn__=np.frombuffer(text, np.uint8), **arrays)
    return path


# round trips -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_bit_identical_across_backends(backend, tmp_path, dtype):
    model, X, _ = trained(backend, dtype)
    path = tmp_path / "m.safetensors"
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
    path = tmp_path / "m.safetensors"
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


def test_the_file_is_the_safetensors_layout_whatever_its_suffix(tmp_path):
    model, _, _ = trained(optimizer=pnn.optimizers.SGD(0.1, momentum=0.9))
    pnn.save(model, tmp_path / "no_opt.npz", optimizer=False)
    assert pnn.load(tmp_path / "no_opt.npz").optimizer is None
    path = tmp_path / "with.npz"            # an .npz name gets safetensors content too
    pnn.save(model, path)
    data = path.read_bytes()
    assert not zipfile.is_zipfile(path)
    n = int.from_bytes(data[:8], "little")
    assert (8 + n) % 8 == 0                 # the data starts aligned, as safetensors writes it
    table, arrays = read_st(path)
    header = json.loads(table["__metadata__"]["portable_nn"])
    assert header["format"] == checkpoint.FORMAT and header["version"] == checkpoint.VERSION == 2
    assert header["dtype"] == "float32" and header["optimizer"]["class"] == "SGD"
    assert header["model"] == model.get_config()
    assert {"param/0.weight", "buffer/1.running_mean", "optim/0/momentum_buffer"} <= set(arrays)
    assert all(table[k]["dtype"] == "F32" for k in arrays)
    np.testing.assert_array_equal(arrays["param/0.weight"], model.state_dict()["0.weight"])
    assert sum(a.nbytes for a in arrays.values()) == len(data) - 8 - n
    assert pnn.load(path).optimizer.momentum == 0.9


def test_the_safetensors_package_reads_our_files_and_we_read_its(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    model, X, _ = trained()
    path = tmp_path / "m.safetensors"
    pnn.save(model, path)
    tensors = st.load_file(str(path))
    expected = {("param/" if k in model.named_parameters() else "buffer/") + k: v
                for k, v in model.state_dict().items()}
    for k, v in expected.items():
        np.testing.assert_array_equal(tensors[k], v)
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    assert json.loads(meta["portable_nn"])["model"] == model.get_config()
    # the same arrays and metadata written by safetensors itself (its own order and padding):
    # the checksum is over names, not positions, so the file loads
    st.save_file(tensors, str(tmp_path / "theirs.safetensors"), metadata=meta)
    assert (tmp_path / "theirs.safetensors").read_bytes() != path.read_bytes()
    np.testing.assert_array_equal(pnn.load(tmp_path / "theirs.safetensors").predict(X),
                                  model.predict(X))


def test_legacy_npz_checkpoints_still_load(tmp_path):
    model, X, y = trained(dtype="float64", optimizer=pnn.optimizers.SGD(0.1, momentum=0.9))
    pnn.save(model, tmp_path / "new.safetensors")
    old = write_legacy(tmp_path / "old.npz", tmp_path / "new.safetensors")
    assert zipfile.is_zipfile(old)
    loaded = pnn.load(old)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.optimizer.iterations == 6 and loaded.optimizer.momentum == 0.9
    assert loaded.evaluate(X, y) == model.evaluate(X, y)
    # and it goes back out in the new layout
    pnn.save(loaded, old)
    assert not zipfile.is_zipfile(old)
    np.testing.assert_array_equal(pnn.load(old).predict(X), model.predict(X))
    # members larger than the bounded prefix that holds their .npy header
    big = pnn.Sequential(Dense(3, 64), Dense(64, 64), device="cpu", dtype="float64", seed=1)
    pnn.save(big, tmp_path / "big.safetensors")
    write_legacy(tmp_path / "big.npz", tmp_path / "big.safetensors")
    np.testing.assert_array_equal(pnn.load(tmp_path / "big.npz").predict(X), big.predict(X))


def test_a_users_layer_that_cannot_declare_its_shapes_still_round_trips(tmp_path):
    class ScaleByVector(pnn.layers.Layer):
        """y = x ⊙ s (a user's layer without state_shapes); local gradient s."""

        def __init__(self, n=2):
            super().__init__()
            self.n = n

        def get_config(self):
            return {"n": self.n}

        def _build(self, rng):
            self.add_parameter("s", np.arange(1.0, self.n + 1.0))

        def forward(self, x, training=False):
            return x * self.s.value

    model = pnn.Sequential(Dense(2, 2), ScaleByVector(2), device="cpu", seed=0)
    X = np.ones((3, 2))
    for suffix in ("safetensors", "npz"):
        path = tmp_path / f"m.{suffix}"
        pnn.save(model, tmp_path / "m.safetensors")
        if suffix == "npz":
            write_legacy(path, tmp_path / "m.safetensors")
        np.testing.assert_array_equal(pnn.load(path).predict(X), model.predict(X))
    # its array's shape is checked against the built layer (after building, which is bounded
    # by the configuration), not against nothing
    bad = variant(tmp_path / "m.safetensors", tmp_path / "bad.safetensors",
                  change_arrays=lambda a: a.update({"param/1.s": np.ones(5, np.float32)}))
    with pytest.raises(ValueError, match=r"1.s.*shape \(5,\)"):
        pnn.load(bad)


# save: what it refuses, how it writes ---------------------------------------------------------------
def test_save_is_atomic(tmp_path, monkeypatch):
    model, _, _ = trained()
    path = tmp_path / "m.safetensors"
    pnn.save(model, path)
    good = path.read_bytes()

    def full_disk(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="disk full"):
        pnn.save(model, path)
    assert path.read_bytes() == good                        # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["m.safetensors"]        # and no temporary file is left


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_new_files_follow_the_umask_and_overwrites_keep_the_mode(tmp_path):
    model, _, _ = trained()
    old = os.umask(0o027)
    try:
        pnn.save(model, tmp_path / "new.safetensors")
        assert os.stat(tmp_path / "new.safetensors").st_mode & 0o777 == 0o640
        os.umask(0o077)
        pnn.save(model, tmp_path / "new.safetensors")         # an overwrite keeps 0640
        assert os.stat(tmp_path / "new.safetensors").st_mode & 0o777 == 0o640
        (tmp_path / "kept").write_bytes(b"")
        os.chmod(tmp_path / "kept", 0o604)
        pnn.save(model, tmp_path / "kept")
        assert os.stat(tmp_path / "kept").st_mode & 0o777 == 0o604
        assert pnn.load(tmp_path / "kept").get_config() == model.get_config()
    finally:
        os.umask(old)


def test_save_refuses_bad_arguments_before_writing(tmp_path):
    model, _, _ = trained()
    with pytest.raises(TypeError, match=r"optimizer must be .*Optimizer.*got str 'adam'"):
        pnn.save(model, tmp_path / "m.safetensors", optimizer="adam")
    with pytest.raises(TypeError, match="model must be a Sequential, got int"):
        pnn.save(5, tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match="path must be"):
        pnn.save(model, 3)
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError, match=re.escape(f"directory '{missing}' does not exist")):
        pnn.save(model, missing / "m.safetensors")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        pnn.save(model, tmp_path)
    assert os.listdir(tmp_path) == []


class _ObjectSlots(pnn.optimizers.SGD):
    """An optimizer whose state holds what NumPy can store only as pickles."""

    def __init__(self, value):
        super().__init__(0.1)
        self.value = value

    def state_dict(self, parameters):
        state = super().state_dict(parameters)
        state["slots"][0] = {"extra": self.value}
        return state


@pytest.mark.parametrize(("value", "message"), [
    (np.array([{"a": 1}], dtype=object), "dtype object is not numeric"),
    (np.array(["text"]), "dtype <U4 is not numeric"),
    (np.zeros(3, np.int64), "it is int64, but the model computes in float32"),
    (np.zeros(3, np.float64), "it is float64, but the model computes in float32"),
])
def test_save_never_writes_a_pickle_or_a_foreign_dtype(tmp_path, value, message):
    model, _, _ = trained()
    with pytest.raises(TypeError, match=f"'optim/0/extra'.*{message}"):
        pnn.save(model, tmp_path / "m.safetensors", optimizer=_ObjectSlots(value))
    assert os.listdir(tmp_path) == []                      # no file, no temporary file


# load: what it refuses, what it warns about ---------------------------------------------------------
def test_load_rejects_a_bad_device_as_the_callers_error(tmp_path):
    model, _, _ = trained()
    pnn.save(model, tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="unknown device"):
        pnn.load(tmp_path / "m.safetensors", device="gpu7")
    with pytest.raises(FileNotFoundError):
        pnn.load(tmp_path / "missing.safetensors")


@pytest.mark.parametrize(("stored", "message"), [
    ("bool", "stored as bool, not a floating-point type"),
    ("int64", "stored as int64, not a floating-point type"),
    ("uint8", "stored as uint8, not a floating-point type"),
    ("float16", "stored as float16, but the checkpoint's dtype is float32: load never converts"),
    ("float64", "stored as float64, but the checkpoint's dtype is float32: load never converts"),
])
@pytest.mark.parametrize("layout", ["safetensors", "npz"])
def test_arrays_must_be_stored_in_the_models_dtype(tmp_path, stored, message, layout):
    model, _, _ = trained()
    good = tmp_path / "good.safetensors"
    pnn.save(model, good)
    for key in ("param/0.weight", "buffer/1.running_var", "optim/0/m"):
        path = variant(good, tmp_path / "v.safetensors", change_arrays=lambda a, key=key: a.update(
            {key: a[key].astype(stored)}))
        if layout == "npz":
            path = write_legacy(tmp_path / "v.npz", path)
        with pytest.raises(ValueError, match=f"'{key}' is {message}"):
            pnn.load(path)
    pnn.load(good)


def test_non_finite_weights_load_with_a_warning_naming_them(tmp_path):
    model, _, _ = trained()
    good = tmp_path / "good.safetensors"
    pnn.save(model, good)

    def diverge(a):
        a["param/0.weight"] = a["param/0.weight"].copy()
        a["param/0.weight"][0, 0] = np.nan
        a["optim/4/v"] = np.full_like(a["optim/4/v"], np.inf)

    path = variant(good, tmp_path / "nan.safetensors", change_arrays=diverge)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = pnn.load(path)
    assert [type(w.message) for w in caught] == [checkpoint.CheckpointWarning]
    assert issubclass(checkpoint.CheckpointWarning, UserWarning)
    assert not issubclass(checkpoint.CheckpointWarning, RuntimeWarning)
    assert "'param/0.weight'" in str(caught[0].message) and "'optim/4/v'" in str(caught[0].message)
    assert "param/4.weight" not in str(caught[0].message)
    assert np.isnan(loaded.state_dict()["0.weight"][0, 0])     # loaded as saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pnn.load(good)                                         # a finite one: no warning


def test_a_negative_running_variance_is_refused(tmp_path, monkeypatch):
    # BatchNorm declares it; until it does, the test declares it in its place
    monkeypatch.setattr(BatchNorm, "nonnegative_state",
                        getattr(BatchNorm, "nonnegative_state", ("running_var",)), raising=False)
    assert "running_var" in BatchNorm.nonnegative_state
    model, _, _ = trained()
    good = tmp_path / "good.safetensors"
    pnn.save(model, good)

    def negative(a):
        a["buffer/1.running_var"] = a["buffer/1.running_var"].copy()
        a["buffer/1.running_var"][2] = -0.5

    for layout in ("safetensors", "npz"):
        path = variant(good, tmp_path / "neg.safetensors", change_arrays=negative)
        if layout == "npz":
            path = write_legacy(tmp_path / "neg.npz", path)
        with pytest.raises(ValueError, match="'buffer/1.running_var' holds negative values"):
            pnn.load(path)
    # a negative running mean is fine
    path = variant(good, tmp_path / "mean.safetensors", change_arrays=lambda a: a.update(
        {"buffer/1.running_mean": -np.abs(a["buffer/1.running_mean"]) - 1}))
    pnn.load(path)


class HalfWrittenLayer(pnn.layers.Layer):
    """Registered (every Layer subclass is) but without forward."""


@pytest.mark.parametrize(("change", "message"), [
    (lambda h: h["model"]["layers"].__setitem__(2, {"class": "_Elementwise", "config": {}}),
     "unknown layer class '_Elementwise'"),
    (lambda h: h["model"]["layers"].__setitem__(2, {"class": "Layer", "config": {}}),
     "unknown layer class 'Layer'"),
    (lambda h: h["model"]["layers"].__setitem__(2, {"class": "HalfWrittenLayer", "config": {}}),
     "'HalfWrittenLayer', which does not implement forward"),
    (lambda h: h.update(loss={"class": "Loss", "config": {}}), "unknown loss"),
    (lambda h: h.update(loss={"class": "_private", "config": {}}), "unknown loss"),
    (lambda h: h["optimizer"].update({"class": "Optimizer"}), "unknown optimizer class"),
    (lambda h: h["optimizer"].update({"class": "_REGISTRY"}), "unknown optimizer class"),
])
def test_a_header_names_only_public_registered_classes(tmp_path, change, message):
    model, _, _ = trained()
    good = tmp_path / "good.safetensors"
    pnn.save(model, good)
    with pytest.raises(ValueError, match=message):
        pnn.load(variant(good, tmp_path / "v.safetensors", change_header=change))


def test_files_from_elsewhere_are_refused_clearly(tmp_path):
    model, _, _ = trained()
    good = tmp_path / "good.safetensors"
    pnn.save(model, good)
    data = good.read_bytes()
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    theirs = tmp_path / "theirs.safetensors"
    write_st(theirs, {}, {"weight": np.ones(3, np.float32)})
    blob = json.dumps({"weight": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}).encode()
    (tmp_path / "plain.safetensors").write_bytes(
        len(blob).to_bytes(8, "little") + blob + np.ones(3, np.float32).tobytes())
    cases = [
        ("random.bin", os.urandom(2000), "header length field says"),
        ("empty.bin", b"", "less than a safetensors header's 8-byte length"),
        ("truncated.st", data[: len(data) // 2], "truncated"),
        ("single.npy", _npy_bytes(np.ones(3)), "single .npy"),
        ("text.st", b"hello world, this is not a checkpoint", "header length field says"),
    ]
    for name, content, message in cases:
        (tmp_path / name).write_bytes(content)
    cases += [("other.npz", None, "no '__portable_nn__' header"),
              ("theirs.safetensors", None, "does not name the format"),
              ("plain.safetensors", None, "no portable_nn header")]
    for name, _, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            pnn.load(tmp_path / name)
        assert name in str(info.value)            # the message names the file
    _write_zip(tmp_path / "zip.npz", {"readme.txt": "hello"})
    with pytest.raises(ValueError, match="not a .npy array"):
        pnn.load(tmp_path / "zip.npz")


@pytest.mark.parametrize(("change", "message"), [
    (lambda h: "{not json", "not valid JSON"),
    (lambda h: json.dumps({**h, "format": "keras"}), "does not name the format"),
    (lambda h: json.dumps({**h, "version": 99}), "newer than this library"),
    (lambda h: json.dumps({**h, "dtype": "float16"}), "dtype 'float16' is not one of"),
    (lambda h: json.dumps({**h, "parameters": h["parameters"] + ["9.weight"]}),
     "'9.weight', which its architecture does not declare"),
    (lambda h: json.dumps({**h, "parameters": h["parameters"][1:]}),
     "needs the array '0.weight', which the header does not name"),
    (lambda h: json.dumps({**h, "model": {"layers": [{"class": "os.system"}]}}),
     "unknown layer class"),
    (lambda h: '{"a": 1, "a": 2}', "a key appears twice"),
    (lambda h: json.dumps(h).replace('"iterations": 6', '"iterations": NaN'), "NaN is not JSON"),
])
def test_doctored_headers_are_refused(tmp_path, change, message):
    model, _, _ = trained()
    good = tmp_path / "good.safetensors"
    pnn.save(model, good)
    table, arrays = read_st(good)
    header = json.loads(table["__metadata__"]["portable_nn"])
    text = change(header)
    h = hashlib.sha256(text.encode())
    for name in sorted(arrays):
        h.update(arrays[name].tobytes())
    meta = {"portable_nn": text, "portable_nn.sha256": h.hexdigest()}
    table["__metadata__"] = meta
    blob = json.dumps(table).encode()
    path = tmp_path / "v.safetensors"
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + good.read_bytes()[
        8 + int.from_bytes(good.read_bytes()[:8], "little"):])
    with pytest.raises(ValueError, match=message):
        pnn.load(path)


def test_a_header_declaring_huge_layers_is_refused_before_anything_is_built(tmp_path,
                                                                             monkeypatch):
    """The layers' declared shapes are compared with the stored arrays before any layer is
    built or any array read: a doctored header cannot make load allocate terabytes."""
    model, _, _ = trained()
    good = tmp_path / "good.safetensors"
    pnn.save(model, good)
    built = []
    monkeypatch.setattr(pnn.layers.Dense, "_build", lambda self, rng: built.append(self))

    def huge(h):
        h["model"]["layers"][0]["config"]["out_features"] = 10**6
        h["model"]["layers"][1]["config"]["features"] = 10**6
        h["model"]["layers"][4]["config"]["in_features"] = 10**6

    for layout in ("safetensors", "npz"):
        path = variant(good, tmp_path / "huge.safetensors", change_header=huge)
        if layout == "npz":
            path = write_legacy(tmp_path / "huge.npz", path)
        with pytest.raises(ValueError, match=r"'param/0.weight' has shape \(3, 6\), but its "
                                             r"architecture declares \(3, 1000000\)"):
            pnn.load(path)
    assert built == []
    monkeypatch.undo()
    pnn.load(good)  # the untouched file still loads


def _write_zip(path, members, compression=zipfile.ZIP_STORED):
    """A zip with the given member names and bytes."""
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)


def _npy_bytes(arr, allow_pickle=False):
    """``arr`` as the bytes of a .npy file."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()
