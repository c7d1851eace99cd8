"""Checkpoints: one ``.npz`` file with the architecture as JSON inside; loading never unpickles.

A checkpoint is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) holding

- ``__portable_nn__``: the header, UTF-8 JSON stored as a ``uint8`` array: format name and version,
  the library version, the model's ``get_config()``, its dtype, the parameter and buffer names,
  the last fit's loss (a built-in one, as class and config) and the optimizer's class, config,
  step count and slot names (or ``null``);
- ``param/<name>`` and ``buffer/<name>``: the model's arrays (names as in ``model.state_dict()``);
- ``optim/<i>/<slot>``: the optimizer's state for parameter ``i``.

``save`` writes to a temporary file in the target directory and renames it over the target
(``os.replace``), so a crash never leaves a half-written checkpoint under the real name. ``load``
opens the file with ``allow_pickle=False``, reads and checks every array and the header before it
builds anything, and rebuilds layers only from registered classes (``LAYER_CLASSES``) with keyword
arguments from the JSON: no code from the file ever runs. Anything unexpected (not a zip, a
truncated or corrupted member (the zip CRC is checked), object arrays, a plain ``.npz`` of another
program, a header of a newer format) raises ``ValueError`` naming the file and the problem.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["FORMAT", "VERSION", "load", "save"]

FORMAT = "portable_nn.checkpoint"
VERSION = 1
_HEADER = "__portable_nn__"


def _json_safe(obj, what):
    """``obj`` as JSON text, or a TypeError saying what could not be saved."""
    try:
        return json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot save {what}: it is not JSON-serialisable ({exc})") from None


def save(model, path, optimizer=None):
    """Write ``model`` (architecture, parameters, buffers) and an optimizer's state to ``path``.

    ``optimizer``: the optimizer whose state to save; ``None`` saves ``model.optimizer`` when one
    is attached (``fit`` attaches it), ``False`` saves none. The file is written exactly at
    ``path`` (no suffix is added); ``.npz`` is the customary one. Returns ``path``.
    """
    from .layers.sequential import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a Sequential, got {type(model).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if optimizer is None:
        optimizer = model.optimizer
    elif optimizer is False:
        optimizer = None
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
            for slot, value in slots.items():
                arrays[f"optim/{i}/{slot}"] = np.asarray(value)
        opt_header = {"class": state["class"], "config": state["config"],
                      "iterations": state["iterations"], "slots": slot_names}
    from . import __version__

    header = {
        "loss": _loss_entry(getattr(model, "_fit_loss", None)),
        "format": FORMAT, "version": VERSION, "library_version": __version__,
        "model": model.get_config(), "dtype": model.dtype_name,
        "parameters": list(params), "buffers": list(model.named_buffers()),
        "optimizer": opt_header,
    }
    text = _json_safe(header, "the model/optimizer configuration")
    arrays[_HEADER] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


class _Bad(Exception):
    """Internal: a reason the file is not a valid checkpoint."""


def _loss_entry(loss):
    """The last fit's loss as ``{"class", "config"}`` when it is a built-in one, else None."""
    from . import losses

    if loss is None or getattr(losses, type(loss).__name__, None) is not type(loss):
        return None
    return {"class": type(loss).__name__, "config": loss.get_config()}


def _check_state_shapes(model_config, state):
    """Before anything is built: every layer's parameters and buffers, as its configuration
    declares them, must be stored with exactly those shapes (a header doctored to declare a huge
    layer would otherwise allocate it before the arrays are compared)."""
    from .layers.base import layer_from_config

    entries = model_config.get("layers")
    if not isinstance(entries, list):
        raise _Bad("its model configuration has no 'layers' list")
    for i, entry in enumerate(entries):
        try:
            shapes = layer_from_config(entry).state_shapes()
        except (TypeError, ValueError, KeyError) as exc:
            raise _Bad(f"its model configuration cannot be rebuilt (layer {i}: {exc})") from None
        for name, shape in (shapes or {}).items():
            key = f"{i}.{name}"
            if key not in state:
                raise _Bad(f"layer {i} needs the array {key!r}, which it does not hold")
            if tuple(state[key].shape) != tuple(shape):
                raise _Bad(f"the array {key!r} has shape {tuple(state[key].shape)}, but layer {i} "
                           f"({entry.get('class')}) declares {tuple(shape)}")


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


def _read_all(path):
    """Every array of the archive. Each member is read whole through ``zipfile`` (which checks
    its CRC: ``np.load`` reads only the bytes it needs and can miss a corrupted member) and parsed
    with ``allow_pickle=False``."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise _Bad("it is a single .npy array, not an .npz archive")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise _Bad(f"its member {info.filename!r} is not a .npy array")
                name = info.filename[:-4]
                if name in arrays:
                    raise _Bad(f"it holds the member {info.filename!r} twice")
                arr = np.lib.format.read_array(io.BytesIO(zf.read(info)), allow_pickle=False)
                arrays[name] = arr
    except _Bad:
        raise
    except ValueError as exc:
        if "object arrays" in str(exc).lower():
            raise _Bad(f"it holds object arrays, which would need unpickling: refused "
                       f"({exc})") from None
        raise _Bad(f"a member is not a valid .npy array ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError,
            RuntimeError) as exc:
        raise _Bad(f"it is truncated, corrupted or not an .npz archive "
                   f"({type(exc).__name__}: {exc})") from None
    if _HEADER not in arrays:
        raise _Bad(f"it has no {_HEADER!r} header: an .npz from another program, or not a "
                   "portable_nn checkpoint")
    return arrays


def _header(raw):
    """Decode and check the JSON header array."""
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _Bad(f"the header must be a 1-D uint8 array, got {raw.dtype} of shape {raw.shape}")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Bad(f"the header is not valid JSON ({exc})") from None
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
    opt = header.get("optimizer")
    if opt is not None and not (isinstance(opt, dict) and isinstance(opt.get("slots"), list)
                                and isinstance(opt.get("class"), str)):
        raise _Bad("the header's 'optimizer' entry is malformed")
    return header


def _numeric(arrays, key):
    """The numeric array ``key`` named in the header."""
    if key not in arrays:
        raise _Bad(f"the array {key!r} named in the header is missing")
    arr = arrays[key]
    if arr.dtype.kind not in "biuf":
        raise _Bad(f"the array {key!r} has dtype {arr.dtype}, not a numeric one")
    return arr


def load(path, device="cpu"):
    """Rebuild the model saved at ``path`` on ``device``; a saved optimizer comes back as
    ``model.optimizer`` with its state, a saved loss as the default of the next fit/evaluate. Raises ``ValueError`` naming the file for anything that is
    not an intact portable_nn checkpoint; nothing is built until the whole file has been checked."""
    from . import optimizers
    from .backends import get_backend
    from .layers.sequential import Sequential

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    get_backend(device)  # a bad device string is the caller's error, not the file's
    try:
        arrays = _read_all(path)
        header = _header(arrays[_HEADER])
        state = {name: _numeric(arrays, f"param/{name}") for name in header["parameters"]}
        state.update({name: _numeric(arrays, f"buffer/{name}") for name in header["buffers"]})
        opt_state = None
        if header["optimizer"] is not None:
            opt = header["optimizer"]
            slots = []
            for i, names in enumerate(opt["slots"]):
                if not isinstance(names, list):
                    raise _Bad(f"the optimizer's slot list {i} is malformed")
                slots.append({s: _numeric(arrays, f"optim/{i}/{s}") for s in names})
            opt_state = {"class": opt["class"], "config": opt.get("config", {}),
                         "iterations": opt.get("iterations"), "slots": slots}
        known = {_HEADER, *(f"param/{k}" for k in header["parameters"]),
                 *(f"buffer/{k}" for k in header["buffers"])}
        known |= {f"optim/{i}/{s}" for i, e in enumerate(opt_state["slots"] if opt_state else [])
                  for s in e}
        extra = sorted(set(arrays) - known)
        if extra:
            raise _Bad(f"it holds arrays the header does not name: {extra[:5]}")
        _check_state_shapes(header["model"], state)
        try:
            model = Sequential.from_config(header["model"], device=device)
        except (TypeError, ValueError, KeyError) as exc:
            raise _Bad(f"its model configuration cannot be rebuilt ({exc})") from None
        try:
            loss = _loss_from_entry(header.get("loss"))
        except (TypeError, ValueError) as exc:
            raise _Bad(f"its loss configuration cannot be rebuilt ({exc})") from None
        try:
            model.load_state_dict(state)
            if opt_state is not None:
                optimizer = optimizers.from_config(opt_state)
                optimizer.load_state_dict(opt_state, model.parameters())
                model.optimizer = optimizer
            if loss is not None:
                model._fit_loss = loss  # so that fit/evaluate can go on without naming it
        except (TypeError, ValueError, KeyError) as exc:
            raise _Bad(f"its arrays do not fit the saved architecture ({exc})") from None
    except _Bad as exc:
        raise ValueError(f"cannot load {path!r}: {exc}") from None
    return model
