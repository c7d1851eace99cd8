"""Checkpoints: one file in the safetensors layout, the architecture as JSON inside; ``load`` reads
the header first, checks every array against what the architecture declares, and never unpickles.

**Layout** (that of the ``safetensors`` package, which reads these files with
``safetensors.numpy.load_file``; written here with NumPy alone): an 8-byte little-endian length
``N``, ``N`` bytes of JSON, then the arrays' raw little-endian bytes. The JSON maps each array name
to its ``dtype`` (``"F32"``/``"F64"``), ``shape`` and ``data_offsets`` (begin, end in the data),
and ``__metadata__`` to two strings: ``"portable_nn"``, our header (JSON: format name and version,
library version, the model's ``get_config()``, its dtype, the parameter and buffer names, the last
fit's loss (a built-in one) and the optimizer's class, config, step count and slot names, or
``null``), and ``"portable_nn.sha256"``, a SHA-256 of that header text followed by the arrays'
bytes in name order (the layout has no checksum of its own; without one a flipped bit in a weight
would load silently). Array names: ``param/<name>``, ``buffer/<name>`` (as ``model.state_dict()``
names them) and ``optim/<i>/<slot>`` (the optimizer's state for parameter ``i``).

**save** writes that layout whatever the path's suffix (``.safetensors`` is the customary one; an
``.npz`` path gets the same content) into a temporary file beside the target, fsyncs it and renames
it over the target, so a crash never leaves a half-written checkpoint under the real name. A new
file gets the mode the umask allows (as ``open`` would), an overwritten one keeps its mode. Every
array must be a float array of the model's dtype (``TypeError`` otherwise, before anything is
written): a checkpoint never holds a pickle.

**load** tells the format by content: a zip is an ``.npz`` written by portable_nn before format
version 2 and goes to the legacy reader; anything else to the safetensors reader. Before reading
any array data both readers check, against the configuration the header declares (its layer,
loss and optimizer classes must be public, registered ones): every array's name, dtype and shape,
and that its bytes fit (safetensors: a header of at most ``MAX_HEADER_BYTES``, offsets contiguous,
non-overlapping and inside the file, each span ``prod(shape) * itemsize``; npz: each member's
declared uncompressed size and its ``.npy`` header, read through a bounded prefix). Only then do
they read exactly those bytes, and the checksum (safetensors) or each member's CRC (npz). So a
doctored file cannot make ``load`` allocate more than the model it describes (the arrays of a
user's layer whose ``state_shapes()`` is ``None`` are bounded by the file's size instead).

**Dtypes**: every parameter, buffer and optimizer slot must be stored in the model's dtype, as
the header declares it. Booleans, integers and complex numbers are refused; a float of another
width (float16 or float64 in a float32 checkpoint) is refused naming the array and both dtypes:
``load`` never converts silently. Arrays holding NaN or Inf load (a diverged checkpoint may be
worth inspecting) with a ``CheckpointWarning`` naming them; a buffer that a layer class lists in
``nonnegative_state`` (BatchNorm's ``running_var``) holding a negative value is refused.

Anything else that is not an intact portable_nn checkpoint raises ``ValueError`` naming the file
and the problem; nothing is built until the whole file has been read and checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import secrets
import stat
import warnings
import zipfile
import zlib
from typing import NamedTuple

import numpy as np

__all__ = ["FORMAT", "MAX_HEADER_BYTES", "VERSION", "CheckpointWarning", "load", "save"]

FORMAT = "portable_nn.checkpoint"
VERSION = 2  # 1: the .npz layout (still read); 2: the safetensors layout
#: The largest JSON header ``load`` parses. Parsing hostile JSON takes up to ~20 times its size in
#: memory, and a real header needs ~100 bytes per array: 16 MiB is ~100,000 arrays.
MAX_HEADER_BYTES = 16 * 2**20
_META, _SHA = "portable_nn", "portable_nn.sha256"
_NPZ_HEADER = "__portable_nn__"
_NPY_PREFIX = 4096  # a .npy member's own header must fit in its first bytes (ours take 128)
_DTYPES = ("float32", "float64")
_ST_DTYPES = {  # safetensors' dtype codes, as NumPy names them
    "BOOL": "bool", "F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64",
    "F8_E4M3": "float8_e4m3", "F8_E5M2": "float8_e5m2", "C64": "complex64",
    **{f"{c}{bits}": f"{n}{bits}" for c, n in (("I", "int"), ("U", "uint")) for bits in (8, 16, 32, 64)},
}
_ST_CODES = {"float32": "F32", "float64": "F64"}


class CheckpointWarning(UserWarning):
    """A checkpoint that loads but deserves a look: its arrays hold NaN or Inf."""


class _Bad(Exception):
    """Internal: a reason the file is not a valid checkpoint."""


def _json_safe(obj, what):
    """``obj`` as JSON text, or a TypeError saying what could not be saved."""
    try:
        return json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot save {what}: it is not JSON-serialisable ({exc})") from None


# saving ------------------------------------------------------------------------------------------
def save(model, path, optimizer=None):
    """Write ``model`` (architecture, parameters, buffers) and an optimizer's state to ``path``.

    ``optimizer``: the optimizer whose state to save; ``None`` saves ``model.optimizer`` when one
    is attached (``fit`` attaches it), ``False`` saves none. The file is written exactly at
    ``path`` (no suffix is added) in the safetensors layout; ``.safetensors`` is the customary
    suffix. Returns ``path``.
    """
    from .layers.containers import Sequential
    from .optimizers import Optimizer

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a Sequential, got {type(model).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path!r}: the directory {directory!r} does not "
                                "exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save to {path!r}: it is a directory")
    if optimizer is None:
        optimizer, argname = model.optimizer, "model.optimizer"
    elif optimizer is False:
        optimizer, argname = None, "optimizer"
    else:
        argname = "optimizer"
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(f"{argname} must be a portable_nn Optimizer, None (the model's own) or "
                        f"False (none), got {type(optimizer).__name__} {optimizer!r}")

    dtype = np.dtype(model.dtype_name)
    arrays = {}
    params = model.named_parameters()
    for name, value in model.state_dict().items():
        arrays[("param/" if name in params else "buffer/") + name] = value
    opt_header = None
    if optimizer is not None:
        state = optimizer.state_dict(model.parameters())
        slot_names = []
        for i, slots in enumerate(state["slots"]):
            slot_names.append(sorted(slots))
            arrays.update({f"optim/{i}/{slot}": value for slot, value in slots.items()})
        opt_header = {"class": state["class"], "config": state["config"],
                      "iterations": state["iterations"], "slots": slot_names,
                      "lr_scale": state.get("lr_scale", 1.0)}
    arrays = {name: _saveable(name, value, dtype) for name, value in arrays.items()}
    from . import __version__

    header = {
        "loss": _loss_entry(getattr(model, "_fit_loss", None)),
        "format": FORMAT, "version": VERSION, "library_version": __version__,
        "model": model.get_config(), "dtype": model.dtype_name,
        "parameters": list(params), "buffers": list(model.named_buffers()),
        "optimizer": opt_header,
        # fit's shuffling and the Dropout masks: a loaded model goes on as if never stopped
        "rng": model.get_rng_state(),
    }
    text = _json_safe(header, "the model/optimizer configuration")
    table, offset = {}, 0
    for name, arr in arrays.items():
        table[name] = {"dtype": _ST_CODES[dtype.name], "shape": list(arr.shape),
                       "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    table = {"__metadata__": {_META: text, _SHA: _digest(text, arrays)}, **table}
    blob = json.dumps(table, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    if len(blob) > MAX_HEADER_BYTES:
        raise ValueError(f"cannot save: the header would take {len(blob)} bytes, more than the "
                         f"{MAX_HEADER_BYTES} that load reads")
    _write_atomically(path, directory, [len(blob).to_bytes(8, "little"), blob, *arrays.values()])
    return path


def _saveable(name, value, dtype):
    """``value`` as a C-ordered little-endian array of ``dtype``, or a TypeError naming it."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot save the array {name!r}: it is not an array ({exc})") from None
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"cannot save the array {name!r}: its dtype {arr.dtype} is not numeric "
                        "(a checkpoint holds raw numbers only, never pickled objects)")
    if arr.dtype.kind != "f" or arr.dtype.itemsize != dtype.itemsize:
        raise TypeError(f"cannot save the array {name!r}: it is {arr.dtype}, but the model computes "
                        f"in {dtype} and every array of its checkpoint must be {dtype} (load "
                        "refuses any other)")
    return arr.astype(dtype.newbyteorder("<"), order="C", copy=False)


def _digest(text, arrays):
    """SHA-256 of the header text and the arrays' bytes in name order (hex)."""
    h = hashlib.sha256(text.encode("utf-8"))
    for name in sorted(arrays):
        h.update(arrays[name])
    return h.hexdigest()


def _write_atomically(path, directory, chunks):
    """Write ``chunks`` (bytes or contiguous arrays) to a new file in ``directory``, fsync it and
    rename it over ``path``. ``os.open(..., 0o666)`` lets the kernel apply the umask (mkstemp would
    make it 0600); an existing target's mode is kept."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.chmod(tmp, mode)
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable, where the platform lets a directory be fsynced
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# what the header declares --------------------------------------------------------------------------
def _json(raw, what):
    """Parse JSON text (or UTF-8 bytes); refuse duplicate keys and NaN/Infinity."""

    def unique(pairs):
        d = dict(pairs)
        if len(d) != len(pairs):
            raise ValueError("a key appears twice")
        return d

    def constant(name):
        raise ValueError(f"{name} is not JSON")

    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        return json.loads(text, object_pairs_hook=unique, parse_constant=constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Bad(f"{what} is not valid JSON ({exc})") from None


def _check_header(text):
    """Decode and check the structure of our JSON header."""
    header = _json(text, "the header")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _Bad(f"the header does not name the format {FORMAT!r}")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _Bad(f"the header has no valid format version (got {version!r})")
    if version > VERSION:
        raise _Bad(f"it is format version {version}, newer than this library reads ({VERSION}); "
                   "upgrade portable_nn")
    for key, kind in (("model", dict), ("parameters", list), ("buffers", list)):
        if not isinstance(header.get(key), kind):
            raise _Bad(f"the header's {key!r} entry is missing or not a {kind.__name__}")
    names = header["parameters"] + header["buffers"]
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise _Bad("the header's parameter and buffer names are not distinct strings")
    dtype = header.get("dtype")
    if not isinstance(dtype, str) or dtype not in _DTYPES or \
            header["model"].get("dtype", "float32") != dtype:
        raise _Bad(f"the header's dtype {dtype!r} is not one of {_DTYPES} or is not its model's")
    opt = header.get("optimizer")
    if opt is not None and not (isinstance(opt, dict) and isinstance(opt.get("class"), str)
                                and isinstance(opt.get("slots"), list)
                                and all(isinstance(s, list) for s in opt["slots"])):
        raise _Bad("the header's 'optimizer' entry is malformed")
    return header


def _declared_layers(model_config):
    """``[(name prefix, unbuilt layer)]`` of every leaf layer the model ``model_config``
    describes, nested containers included (``"2.0."``). Each class is checked as the unbuilt model
    is made from the configuration (`layer_from_config`): public (no leading ``_``), registered,
    implementing ``forward``. The one place that knows how a model configuration nests."""
    from .layers.containers import Container, Sequential

    if not isinstance(model_config.get("layers"), list):
        raise _Bad("its model configuration has no 'layers' list")
    try:
        model = Sequential.from_config(model_config, device=None)  # unbuilt: nothing allocated
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise _Bad(f"its model configuration cannot be rebuilt ({exc})") from None
    layers = []

    def walk(container, prefix):
        for i, layer in enumerate(container.layers):
            if isinstance(layer, Container):
                walk(layer, f"{prefix}{i}.")
            else:
                layers.append((f"{prefix}{i}.", layer))

    walk(model, "")
    return layers


def _declared_state(model_config):
    """``{array name: shape}`` that building ``model_config`` will create, known from the
    configuration alone. A layer that cannot say (a user's whose ``state_shapes()`` is ``None``)
    contributes ``"<prefix>*": None``: any array under that prefix, bounded by the file alone."""
    declared = {}
    for prefix, layer in _declared_layers(model_config):
        shapes = layer.state_shapes()
        if shapes is None:
            declared[prefix + "*"] = None
        else:
            declared.update({prefix + name: tuple(shape) for name, shape in shapes.items()})
    return declared


class _Plan(NamedTuple):
    """What the header declares, checked before any array is read."""

    expected: dict  # array name -> shape (None: a user's layer, bounded by the file)
    dtype: np.dtype
    optimizer: object
    loss: object
    nonnegative: list  # array names that must hold no negative value


def _plan(header):
    """Check the header against the architecture it describes and list the arrays it needs."""
    from . import optimizers

    declared = _declared_state(header["model"])
    shapes = {}
    for name in header["parameters"] + header["buffers"]:
        if name in declared:
            shapes[name] = declared[name]
        elif any(k.endswith("*") and name.startswith(k[:-1]) for k in declared):
            shapes[name] = None
        else:
            raise _Bad(f"the header names the array {name!r}, which its architecture does not "
                       "declare (missing from the model it describes)")
    for name in declared:
        if not name.endswith("*") and name not in shapes:
            raise _Bad(f"its architecture needs the array {name!r}, which the header does not name")
    expected = {f"param/{n}": shapes[n] for n in header["parameters"]}
    expected.update({f"buffer/{n}": shapes[n] for n in header["buffers"]})
    optimizer = None
    opt = header.get("optimizer")
    if opt is not None:
        try:
            optimizer = optimizers.from_config({"class": opt["class"],
                                                "config": opt.get("config", {})})
        except (TypeError, ValueError, KeyError) as exc:
            raise _Bad(f"its optimizer cannot be rebuilt ({exc})") from None
        slot_names = sorted(optimizer._slot_names())
        if len(opt["slots"]) != len(header["parameters"]):
            raise _Bad(f"its optimizer state has {len(opt['slots'])} slot lists for "
                       f"{len(header['parameters'])} parameters")
        for i, names in enumerate(opt["slots"]):
            if names and names != slot_names:
                raise _Bad(f"its optimizer's slot list {i} is {names!r}, not [] or {slot_names}")
            shape = shapes[header["parameters"][i]]
            expected.update({f"optim/{i}/{slot}": shape for slot in names})
    try:
        loss = _loss_from_entry(header.get("loss"))
    except (TypeError, ValueError) as exc:
        raise _Bad(f"its loss configuration cannot be rebuilt ({exc})") from None
    nonnegative = [f"{kind}/{prefix}{name}" for prefix, layer in _declared_layers(header["model"])
                   for name in getattr(type(layer), "nonnegative_state", ())
                   for kind in ("param", "buffer")]
    return _Plan(expected, np.dtype(header["dtype"]), optimizer, loss,
                 [n for n in nonnegative if n in expected])


def _loss_entry(loss):
    """The last fit's loss as ``{"class", "config"}`` when it is a built-in one, else None."""
    from . import losses

    if loss is None or getattr(losses, type(loss).__name__, None) is not type(loss):
        return None
    return {"class": type(loss).__name__, "config": loss.get_config()}


def _loss_from_entry(entry):
    """Rebuild a built-in loss from its header entry (None stays None)."""
    from . import losses

    if entry is None:
        return None
    cls = getattr(losses, entry.get("class", ""), None) if isinstance(entry, dict) else None
    if not (isinstance(cls, type) and issubclass(cls, losses.Loss) and cls is not losses.Loss
            and entry["class"] in losses.__all__):
        raise _Bad(f"the header names an unknown loss {entry!r}")
    return cls(**entry.get("config", {}))


def _check_dtype(name, stored, dtype):
    """Refuse an array not stored in the checkpoint's dtype: load never converts."""
    if not (stored.startswith("float") or stored == "bfloat16"):
        raise _Bad(f"the array {name!r} is stored as {stored}, not a floating-point type (a "
                   f"{dtype} checkpoint holds {dtype} arrays only)")
    if stored != dtype.name:
        raise _Bad(f"the array {name!r} is stored as {stored}, but the checkpoint's dtype is "
                   f"{dtype.name}: load never converts (save the model in the dtype to load)")


def _check_shape(name, shape, expected):
    if expected is not None and shape != expected:
        raise _Bad(f"the array {name!r} has shape {shape}, but its architecture declares "
                   f"{expected}")


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


# reading safetensors -------------------------------------------------------------------------------
def _read_safetensors(f, head, size):
    """Header, plan and arrays of a safetensors file; no array byte is read before every entry
    of the table has been checked against the plan."""
    if len(head) < 8:
        raise _Bad(f"it is truncated or not a checkpoint: {len(head)} bytes, less than a "
                   "safetensors header's 8-byte length")
    n = int.from_bytes(head, "little")
    if n > MAX_HEADER_BYTES:
        raise _Bad(f"its header length field says {n} bytes, more than the {MAX_HEADER_BYTES} a "
                   "checkpoint header may take: not a portable_nn checkpoint, or corrupted")
    if n > size - 8:
        raise _Bad(f"it is truncated: its header length field says {n} bytes, but only "
                   f"{size - 8} follow")
    raw = f.read(n)
    table = _json(raw, "its safetensors header")
    meta = table.pop("__metadata__", None) if isinstance(table, dict) else None
    if not (isinstance(meta, dict) and isinstance(meta.get(_META), str)
            and isinstance(meta.get(_SHA), str)):
        raise _Bad("it holds no portable_nn header and checksum: not a portable_nn checkpoint "
                   "(a safetensors file from another program?), or corrupted")
    header = _check_header(meta[_META])
    plan = _plan(header)
    spans = _check_table(table, plan, size - 8 - n)
    arrays = {}
    for _, _, name, shape in spans:  # contiguous from the data's start: one sequential read
        buf = bytearray(math.prod(shape) * plan.dtype.itemsize)
        if f.readinto(buf) != len(buf):
            raise _Bad(f"it is truncated inside the array {name!r}")
        arrays[name] = np.frombuffer(buf, dtype=plan.dtype.newbyteorder("<")).reshape(shape)
    if _digest(meta[_META], arrays) != meta[_SHA]:
        raise _Bad("it is corrupted: its checksum does not match its contents")
    return header, plan, {k: a.astype(plan.dtype, copy=False) for k, a in arrays.items()}


def _check_table(table, plan, data_size):
    """Every entry of the tensor table against the plan: name, dtype, shape, a span of exactly
    ``prod(shape) * itemsize`` bytes; spans contiguous from 0 to the end of the file. Returns
    ``[(begin, end, name, shape)]`` in file order."""
    extra = sorted(set(table) - set(plan.expected))
    if extra:
        raise _Bad(f"it holds arrays the header does not name: {extra[:5]}")
    missing = sorted(set(plan.expected) - set(table))
    if missing:
        raise _Bad(f"the array {missing[0]!r} named in the header is missing")
    spans = []
    for name, entry in table.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _Bad(f"the table entry of {name!r} is not {{dtype, shape, data_offsets}}")
        code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(code, str) or code not in _ST_DTYPES:
            raise _Bad(f"the array {name!r} has an unknown dtype code {code!r}")
        _check_dtype(name, _ST_DTYPES[code], plan.dtype)
        if not (isinstance(shape, list) and all(_is_int(d) for d in shape)):
            raise _Bad(f"the array {name!r} has no valid shape ({shape!r})")
        _check_shape(name, tuple(shape), plan.expected[name])
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_int, offsets))
                and offsets[0] <= offsets[1]):
            raise _Bad(f"the array {name!r} has no valid data_offsets ({offsets!r})")
        need = math.prod(shape) * plan.dtype.itemsize
        if offsets[1] - offsets[0] != need:
            raise _Bad(f"the array {name!r} spans {offsets[1] - offsets[0]} bytes, but its shape "
                       f"{tuple(shape)} of {plan.dtype} takes {need}")
        spans.append((offsets[0], offsets[1], name, tuple(shape)))
    spans.sort()
    end = 0
    for begin, stop, name, _ in spans:
        if begin != end:
            raise _Bad(f"the array {name!r} starts at byte {begin} of the data, not at {end}: "
                       "its arrays overlap or leave a gap")
        end = stop
    if end != data_size:
        raise _Bad(f"its arrays take {end} bytes, but {data_size} bytes of data follow its "
                   f"header: {'truncated' if end > data_size else 'trailing bytes'}")
    return spans


# reading the legacy .npz -----------------------------------------------------------------------------
_ZIP_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError,
               RuntimeError, zlib.error)


def _read_npz(f):
    """Header, plan and arrays of a format-1 ``.npz``: the header member first, then each member
    only after its declared size and its ``.npy`` header fit the plan."""
    try:
        zf = zipfile.ZipFile(f)
    except (*_ZIP_ERRORS, ValueError) as exc:
        raise _Bad(f"it is truncated, corrupted or not an .npz archive "
                   f"({type(exc).__name__}: {exc})") from None
    with zf:
        members = {}
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                raise _Bad(f"its member {info.filename!r} is not a .npy array")
            if info.filename[:-4] in members:
                raise _Bad(f"it holds the member {info.filename!r} twice")
            members[info.filename[:-4]] = info
        if _NPZ_HEADER not in members:
            raise _Bad(f"it has no {_NPZ_HEADER!r} header: an .npz from another program, or not a "
                       "portable_nn checkpoint")
        raw = _npy_member(zf, members.pop(_NPZ_HEADER), _NPZ_HEADER, np.dtype(np.uint8), None,
                          MAX_HEADER_BYTES)
        if raw.ndim != 1:
            raise _Bad(f"the header must be a 1-D uint8 array, got shape {raw.shape}")
        header = _check_header(raw.tobytes())
        plan = _plan(header)
        extra = sorted(set(members) - set(plan.expected))
        if extra:
            raise _Bad(f"it holds arrays the header does not name: {extra[:5]}")
        missing = sorted(set(plan.expected) - set(members))
        if missing:
            raise _Bad(f"the array {missing[0]!r} named in the header is missing")
        arrays = {}
        for name, shape in plan.expected.items():
            info = members[name]
            # a shape the architecture cannot declare: the member must be stored, not deflated,
            # so that the file's own size bounds it
            limit = info.compress_size if shape is None else \
                math.prod(shape) * plan.dtype.itemsize
            arrays[name] = _npy_member(zf, info, name, plan.dtype, shape, limit)
    return header, plan, arrays


def _npy_member(zf, info, name, dtype, shape, limit):
    """The array of member ``info``, read without trusting it: its declared uncompressed size
    against ``limit`` bytes (+ room for the .npy header) before decompressing; its .npy header
    parsed from a bounded prefix, dtype and shape checked before allocating; then exactly the data
    bytes, to the member's end (so ``zipfile`` checks its CRC)."""
    if info.file_size > limit + _NPY_PREFIX:
        raise _Bad(f"the member of {name!r} declares {info.file_size} bytes uncompressed, more "
                   f"than the {limit} its architecture needs")
    try:
        with zf.open(info) as m:
            prefix = m.read(min(info.file_size, _NPY_PREFIX))
            pf = io.BytesIO(prefix)
            try:
                version = np.lib.format.read_magic(pf)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f".npy version {version} is not 1.0 or 2.0")
                stored_shape, fortran, stored = read_header(pf)
            except ValueError as exc:
                raise _Bad(f"the member of {name!r} is not a valid .npy array ({exc})") from None
            if dtype == np.uint8:  # the JSON header
                if stored != dtype:
                    raise _Bad(f"the header must be a 1-D uint8 array, got {stored}")
            else:
                _check_dtype(name, stored.name, dtype)
            _check_shape(name, stored_shape, shape)
            nbytes = math.prod(stored_shape) * stored.itemsize
            if nbytes > limit or pf.tell() + nbytes != info.file_size:
                raise _Bad(f"the member of {name!r} holds {info.file_size - pf.tell()} data bytes, "
                           f"but its shape {stored_shape} of {stored} takes {nbytes}")
            buf = bytearray(nbytes)
            head = prefix[pf.tell():]
            buf[:len(head)] = head
            rest = memoryview(buf)[len(head):]
            if (len(rest) and m.readinto(rest) != len(rest)) or m.read(1):
                raise _Bad(f"the member of {name!r} is truncated")
    except _ZIP_ERRORS as exc:
        raise _Bad(f"it is truncated, corrupted or not an .npz archive "
                   f"({type(exc).__name__}: {exc})") from None
    arr = np.frombuffer(buf, dtype=stored)
    arr = arr.reshape(stored_shape[::-1]).T if fortran else arr.reshape(stored_shape)
    return arr.astype(stored.newbyteorder("="), copy=False)


# loading -----------------------------------------------------------------------------------------
def load(path, device="cpu"):
    """Rebuild the model saved at ``path`` on ``device``; a saved optimizer comes back as
    ``model.optimizer`` with its state, a saved loss as the default of the next fit/evaluate.

    Reads both layouts (safetensors, and the ``.npz`` of format version 1), told apart by content.
    Raises ``ValueError`` naming the file for anything that is not an intact portable_nn
    checkpoint; nothing is built until the whole file has been checked. Warns
    ``CheckpointWarning`` when arrays hold NaN or Inf (the model still loads)."""
    from .backends import get_backend
    from .layers.containers import Sequential

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    get_backend(device)  # a bad device string is the caller's error, not the file's
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
                header, plan, arrays = _read_npz(f)
            elif head[:6] == b"\x93NUMPY":
                raise _Bad("it is a single .npy array, not a checkpoint")
            else:
                header, plan, arrays = _read_safetensors(f, head, os.fstat(f.fileno()).st_size)
        for name in plan.nonnegative:
            if bool((arrays[name] < 0).any()):
                raise _Bad(f"the array {name!r} holds negative values, which its layer never has")
        nonfinite = [name for name, arr in arrays.items() if not np.isfinite(arr).all()]
        state = {n: arrays[f"param/{n}"] for n in header["parameters"]}
        state.update({n: arrays[f"buffer/{n}"] for n in header["buffers"]})
        try:
            model = Sequential.from_config(header["model"], device=device)
        except (TypeError, ValueError, KeyError) as exc:
            raise _Bad(f"its model configuration cannot be rebuilt ({exc})") from None
        try:
            model.load_state_dict(state)
            if plan.optimizer is not None:
                opt = header.get("optimizer")
                slots = [{s: arrays[f"optim/{i}/{s}"] for s in names}
                         for i, names in enumerate(opt["slots"])]
                plan.optimizer.load_state_dict(
                    {"class": opt["class"], "iterations": opt.get("iterations"), "slots": slots,
                     "lr_scale": opt.get("lr_scale", 1.0)},
                    model.parameters())
                model.optimizer = plan.optimizer
            if header.get("rng") is not None:  # (files of format version 1 have none)
                model.set_rng_state(header["rng"])
            if plan.loss is not None:
                model._fit_loss = plan.loss  # so that fit/evaluate can go on without naming it
        except (TypeError, ValueError, KeyError) as exc:
            raise _Bad(f"its arrays do not fit the saved architecture ({exc})") from None
    except _Bad as exc:
        raise ValueError(f"cannot load {path!r}: {exc}") from None
    if nonfinite:
        warnings.warn(CheckpointWarning(
            f"{path!r} holds NaN or Inf in {nonfinite}: loaded as saved (a diverged model?)"),
            stacklevel=2)
    return model
