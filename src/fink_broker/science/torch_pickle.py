"""Reading PyTorch state dicts (``torch.save``) into numpy arrays, without PyTorch.

SuperNNova's trained models ship as ``model.pt`` state dicts. PyPI's ``torch`` wheel for
Linux is a CUDA build that needs ~3 GB of NVIDIA libraries to import, so the broker does
not depend on it: the conversion step (``fink_broker.science.model_conversion``) reads the
weights with this module and writes an ONNX graph that onnxruntime runs.

Two on-disk layouts exist. The zip layout (torch >= 1.6: ``archive/data.pkl`` plus one file
per storage under ``archive/data/``) and the legacy layout (torch < 1.6, what Fink's
SuperNNova models use): a magic-number pickle, a protocol-version pickle, a system-info
pickle, the object pickle whose tensors point at storages by key (persistent ids), a
pickle of the storage keys in file order, and then each storage as an 8-byte little-endian
element count followed by its raw little-endian elements. Both pickles rebuild tensors
through ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``, which is
mapped here to a numpy view.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

#: the first pickle of the legacy layout
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
#: numpy dtypes of torch's storage classes
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    """Stands for ``torch.FloatStorage`` & co. in a pickle: only its dtype matters."""

    def __init__(self, name: str) -> None:
        if name not in STORAGE_DTYPES:
            raise ValueError(f"unsupported torch storage type {name}")
        self.dtype = STORAGE_DTYPES[name]


def _rebuild_tensor(storage: Any, offset: int, size: tuple, stride: tuple, *_: Any) -> Any:
    """A tensor as a numpy array over its storage (strides in elements).

    In the legacy layout the storage bytes come after the object pickle: the tensor is then
    returned as ``(storage, (offset, size, stride))`` and built once the bytes are read.
    """
    if isinstance(storage, _LazyStorage):
        return storage, (offset, size, stride)
    item = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
    ).copy()


class _Unpickler(pickle.Unpickler):
    """Resolves torch's classes to the stand-ins above; refuses anything else."""

    def __init__(self, data: io.BufferedIOBase, storages: dict[str, np.ndarray] | None) -> None:
        super().__init__(data)
        self.storages = storages
        #: legacy layout: key -> dtype of each storage the object pickle named
        self.wanted: dict[str, np.dtype] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a state dict")

    def persistent_load(self, pid: Any) -> Any:
        kind, storage_type, key, _location, numel = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        dtype = storage_type.dtype
        if self.storages is None:  # legacy layout: storages follow the object pickle
            self.wanted[str(key)] = dtype
            return _LazyStorage(str(key), int(numel), dtype)
        return np.frombuffer(self.storages[str(key)], dtype=dtype)


class _LazyStorage:
    """A legacy-layout storage named before its bytes are read."""

    def __init__(self, key: str, numel: int, dtype: np.dtype) -> None:
        self.key, self.numel, self.dtype = key, numel, dtype


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a ``torch.save``'d state dict, by name, as numpy arrays.

    Raises ``pickle.UnpicklingError`` for anything that is not a plain state dict (a whole
    pickled module would need torch's classes, which this reader refuses to construct).
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    return _load_legacy(path.read_bytes())


def _load_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        root = names[0].split("/", 1)[0]
        storages = {
            n.rsplit("/", 1)[1]: archive.read(n) for n in names if n.startswith(f"{root}/data/")
        }
        data = io.BytesIO(archive.read(f"{root}/data.pkl"))
    return dict(_Unpickler(data, storages).load())


def _load_legacy(raw: bytes) -> dict[str, np.ndarray]:
    stream = io.BytesIO(raw)
    if pickle.load(stream) != LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a torch.save file (bad magic number)")
    pickle.load(stream)  # protocol version
    pickle.load(stream)  # system info (endianness, type sizes)
    unpickler = _Unpickler(stream, None)
    state = unpickler.load()
    keys = pickle.load(stream)
    arrays: dict[str, np.ndarray] = {}
    for key in keys:
        (count,) = struct.unpack("<q", stream.read(8))
        dtype = unpickler.wanted[str(key)]
        arrays[str(key)] = np.frombuffer(stream.read(count * dtype.itemsize), dtype=dtype)
    out: dict[str, np.ndarray] = {}
    for name, value in state.items():
        storage, args = value
        out[name] = _rebuild_tensor(arrays[storage.key], *args)
    return out
