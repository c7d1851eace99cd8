"""Hostile checkpoints: files built to make load run code, allocate, decompress or read more than
the architecture they describe needs. Each must be refused with ValueError, and quickly."""

import io
import json
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from test_checkpoint import _npy_bytes, _write_zip, read_st, trained, variant, write_legacy

import portable_nn as pnn

SMALL = 4 * 2**20  # what a refusal may allocate, at most: far below what the files declare


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(the model, its checkpoint, the same as a legacy .npz, the .npz's members)."""
    d = tmp_path_factory.mktemp("hostile")
    model, _, _ = trained()
    pnn.save(model, d / "good.safetensors")
    write_legacy(d / "good.npz", d / "good.safetensors")
    with zipfile.ZipFile(d / "good.npz") as z:
        members = {n: z.read(n) for n in z.namelist()}
    return model, d / "good.safetensors", d / "good.npz", members


def refused_within(path, message, limit=SMALL):
    """Load ``path``: it must raise ValueError matching ``message`` with a peak of traced
    allocations below ``limit`` bytes."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=message):
            pnn.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"{path.name}: {peak} bytes allocated on the way to refusing it"


def _npy_header(shape, descr="<f4"):
    """The bytes of a .npy 1.0 header declaring ``shape``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue()


class _Trap:
    """Unpickling this would create the file ``flag``: proof that code from a file ran."""

    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return (open, (self.flag, "w"))


def test_malicious_files_never_run_code(tmp_path, saved):
    _, _, _, members = saved
    flag = tmp_path / "pwned"
    trap = np.empty(1, dtype=object)
    trap[0] = _Trap(str(flag))
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
    # a plain pickle file, under either name
    for name in ("plain.npz", "plain.safetensors"):
        (tmp_path / name).write_bytes(pickle.dumps(_Trap(str(flag))))
        with pytest.raises(ValueError, match="cannot load"):
            pnn.load(tmp_path / name)
    assert not flag.exists()


# the legacy .npz --------------------------------------------------------------------------------------
def test_an_npy_header_declaring_a_terabyte_is_refused_without_allocating(tmp_path, saved):
    _, _, _, members = saved
    bogus = _npy_header((10**12,)) + bytes(128)
    _write_zip(tmp_path / "param.npz", {**members, "param/0.weight.npy": bogus})
    refused_within(tmp_path / "param.npz", r"'param/0.weight' has shape \(1000000000000,\), "
                                           r"but its architecture declares \(3, 6\)")
    header = _npy_header((10**12,), "|u1") + bytes(128)
    _write_zip(tmp_path / "header.npz", {**members, "__portable_nn__.npy": header})
    refused_within(tmp_path / "header.npz", r"'__portable_nn__' holds 128 data bytes, but its "
                                            r"shape \(1000000000000,\) of uint8 takes")


@pytest.fixture(scope="module")
def bomb(tmp_path_factory, saved):
    """A ~260 KB .npz holding a 256 MB deflated member for param/0.weight."""
    _, _, _, members = saved
    d = tmp_path_factory.mktemp("bomb")
    info = zipfile.ZipInfo("param/0.weight.npy")
    info.compress_type = zipfile.ZIP_DEFLATED
    path = d / "bomb.npz"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            if name != info.filename:
                z.writestr(name, data)
        with z.open(info, "w") as m:
            m.write(_npy_header((3, 6)))  # what the architecture declares, then far more
            chunk = bytes(2**20)
            for _ in range(256):
                m.write(chunk)
    return path


def test_a_decompression_bomb_is_refused_before_decompressing(bomb):
    with zipfile.ZipFile(bomb) as z:
        info = z.getinfo("param/0.weight.npy")
    assert info.file_size > 256 * 2**20 and bomb.stat().st_size < 400_000
    refused_within(bomb, r"'param/0.weight' declares \d+ bytes uncompressed, more than the 72")


def test_a_bomb_that_lies_about_its_size_is_read_no_further(tmp_path, bomb):
    """The same member with its declared size patched down to what the architecture needs: only
    that much is decompressed, and the CRC (of the whole stream) then fails."""
    data = bytearray(bomb.read_bytes())
    name = b"param/0.weight.npy"
    pos = 0
    while True:  # the central directory entry of that member
        pos = data.index(b"PK\x01\x02", pos + 1)
        n = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46:pos + 46 + n] == name:
            break
    size = len(_npy_header((3, 6))) + 72
    struct.pack_into("<I", data, pos + 24, size)
    (tmp_path / "liar.npz").write_bytes(bytes(data))
    with zipfile.ZipFile(tmp_path / "liar.npz") as z:
        assert z.getinfo(name.decode()).file_size == size
    refused_within(tmp_path / "liar.npz", "Bad CRC-32")


def test_an_undeclared_layers_member_must_be_bounded_by_the_file(tmp_path):
    """A user's layer whose shapes are unknown before building: its member may not be deflated
    beyond its stored size (np.savez never compresses)."""

    class Unsized(pnn.layers.Layer):
        """y = x + b (a user's layer without state_shapes); local gradient 1."""

        def _build(self, rng):
            self.add_parameter("b", np.zeros(3))

        def forward(self, x, training=False):
            return x + self.b.value

    model = pnn.Sequential(Unsized(), device="cpu")
    pnn.save(model, tmp_path / "m.safetensors")
    write_legacy(tmp_path / "m.npz", tmp_path / "m.safetensors")
    pnn.load(tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["param/0.b.npy"] = _npy_header((2**22,)) + bytes(2**24)
    _write_zip(tmp_path / "bomb.npz", members, zipfile.ZIP_DEFLATED)
    refused_within(tmp_path / "bomb.npz", r"'param/0.b' declares \d+ bytes uncompressed")
    members["param/0.b.npy"] = _npy_header((10**12,)) + bytes(12)
    _write_zip(tmp_path / "shape.npz", members)
    refused_within(tmp_path / "shape.npz", r"'param/0.b' holds 12 data bytes, but its shape")


# safetensors --------------------------------------------------------------------------------------------
def doctor(src, out, change):
    """A copy of ``src`` whose tensor table (not our header, so the checksum still holds) is
    changed in place by ``change(table)``; the data is kept."""
    data = src.read_bytes()
    n = int.from_bytes(data[:8], "little")
    table = json.loads(data[8:8 + n])
    change(table)
    blob = json.dumps(table).encode()
    out.write_bytes(len(blob).to_bytes(8, "little") + blob + data[8 + n:])
    return out


def test_a_table_declaring_huge_shapes_or_spans_is_refused_without_allocating(tmp_path, saved):
    _, good, _, _ = saved
    cases = [
        (lambda t: t["param/0.weight"].update(shape=[10**12]),
         r"'param/0.weight' has shape \(1000000000000,\), but its architecture declares"),
        (lambda t: t["param/0.weight"].update(data_offsets=[0, 10**15]),
         r"'param/0.weight' spans 1000000000000000 bytes"),
        (lambda t: t["param/0.weight"].update(dtype="F64"),
         "stored as float64, but the checkpoint's dtype is float32"),
        (lambda t: t["param/0.weight"].update(shape=[-3, -6]), "no valid shape"),
        (lambda t: t["param/0.weight"].update(data_offsets=[72, 0]), "no valid data_offsets"),
        (lambda t: t["param/0.weight"].update(extra=1), "not {dtype, shape, data_offsets}"),
        (lambda t: t.update({"param/9.weight": t["param/0.weight"]}),
         "holds arrays the header does not name"),
        (lambda t: t.pop("param/0.bias"), "'param/0.bias' named in the header is missing"),
    ]
    for i, (change, message) in enumerate(cases):
        refused_within(doctor(good, tmp_path / f"c{i}.safetensors", change), message)


def test_overlapping_gapped_or_out_of_file_offsets_are_refused(tmp_path, saved):
    _, good, _, _ = saved
    table, _ = read_st(good)
    gamma, beta = table["param/1.gamma"]["data_offsets"], table["param/1.beta"]["data_offsets"]
    last = max((k for k in table if k != "__metadata__"), key=lambda k: table[k]["data_offsets"])
    end = table[last]["data_offsets"]

    def shift(t, by):
        for k, e in t.items():
            if k != "__metadata__" and e["data_offsets"][0] >= gamma[1]:
                e["data_offsets"] = [e["data_offsets"][0] + by, e["data_offsets"][1] + by]

    cases = [
        # beta reads gamma's bytes: two arrays over the same data
        (lambda t: t["param/1.beta"].update(data_offsets=gamma), "overlap or leave a gap"),
        (lambda t: (t["param/1.gamma"].update(data_offsets=beta),
                    t["param/1.beta"].update(data_offsets=gamma)), None),
        (lambda t: shift(t, 8), "overlap or leave a gap"),           # a gap after gamma
        (lambda t: shift(t, -4), "overlap or leave a gap"),          # an overlap
        (lambda t: t[last].update(data_offsets=[end[0] + 8, end[1] + 8]), "overlap or leave a gap"),
    ]
    for i, (change, message) in enumerate(cases):
        path = doctor(good, tmp_path / f"o{i}.safetensors", change)
        if message is None:  # swapped in the table: the checksum (in name order) catches it
            message = "checksum does not match"
        refused_within(path, message)
    data = good.read_bytes()
    (tmp_path / "tail.safetensors").write_bytes(data + bytes(8))
    refused_within(tmp_path / "tail.safetensors", "trailing bytes")
    (tmp_path / "short.safetensors").write_bytes(data[:-4])
    refused_within(tmp_path / "short.safetensors", "truncated")


@pytest.mark.parametrize(("length", "message"), [
    (2**63, "header length field says 9223372036854775808 bytes, more than the 16777216"),
    (2**64 - 1, "more than the 16777216"),
    (16 * 2**20 + 1, "more than the 16777216"),
    (10**6, "it is truncated: its header length field says 1000000 bytes"),
    (0, "safetensors header is not valid JSON"),
])
def test_a_header_length_out_of_bounds_is_refused_without_reading_it(tmp_path, saved, length,
                                                                     message):
    _, good, _, _ = saved
    data = good.read_bytes()
    path = tmp_path / "len.safetensors"
    path.write_bytes(length.to_bytes(8, "little") + data[8:])
    refused_within(path, message)


def test_json_bombs_in_the_header_are_refused(tmp_path):
    deep = b"[" * 200_000 + b"]" * 200_000
    path = tmp_path / "deep.safetensors"
    path.write_bytes(len(deep).to_bytes(8, "little") + deep)
    with pytest.raises(ValueError, match="not valid JSON"):
        pnn.load(path)
    not_utf8 = json.dumps({"a": "é"}).encode("utf-16")
    path.write_bytes(len(not_utf8).to_bytes(8, "little") + not_utf8)
    with pytest.raises(ValueError, match="not valid JSON"):
        pnn.load(path)


def test_every_truncation_is_refused(tmp_path, saved):
    _, good, legacy, _ = saved
    for src in (good, legacy):
        data = src.read_bytes()
        cut = tmp_path / "cut"
        for n in list(range(64)) + list(range(64, len(data), 97)):
            cut.write_bytes(data[:n])
            with pytest.raises(ValueError, match="cannot load"):
                pnn.load(cut)


def test_every_flipped_byte_is_refused(tmp_path, saved):
    """The safetensors layout has no checksum of its own: ours covers our header and the data,
    and the table is checked against the architecture, so no flipped byte loads."""
    _, good, _, _ = saved
    data = good.read_bytes()
    bad = tmp_path / "bad.safetensors"
    positions = range(0, len(data), 7)
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 0x5A
        bad.write_bytes(bytes(flipped))
        with pytest.raises(ValueError, match="cannot load"):
            pnn.load(bad)


def test_every_flipped_byte_of_a_legacy_file_is_caught_or_harmless(tmp_path, saved):
    """Load either refuses it with ValueError or (when the byte was in zip bookkeeping that is
    not used) gives back exactly the saved model."""
    model, _, legacy, _ = saved
    X = np.random.default_rng(0).normal(size=(8, 3))
    ref = model.predict(X)
    data = legacy.read_bytes()
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


def test_doctored_arrays_with_a_redone_checksum_are_still_bounded(tmp_path, saved):
    """An attacker who recomputes the checksum still meets the architecture's bounds."""
    _, good, _, _ = saved
    path = variant(good, tmp_path / "v.safetensors", change_arrays=lambda a: a.update(
        {"param/0.weight": np.zeros(2**20, np.float32)}))
    refused_within(path, r"'param/0.weight' has shape \(1048576,\), but its architecture")
