"""TensorProto <-> numpy, accepting both `tensor_content` and the typed `*_val` fields, as TF Serving does."""
from __future__ import annotations

import math

import numpy as np

from brainwave.errors import InvalidInputError, brief
from brainwave.protocol.api import api

# DataType name -> (numpy dtype, typed repeated field)
_DTYPES: dict[str, tuple[np.dtype, str]] = {
    "DT_FLOAT": (np.dtype(np.float32), "float_val"),
    "DT_DOUBLE": (np.dtype(np.float64), "double_val"),
    "DT_HALF": (np.dtype(np.float16), "half_val"),
    "DT_INT8": (np.dtype(np.int8), "int_val"),
    "DT_INT16": (np.dtype(np.int16), "int_val"),
    "DT_INT32": (np.dtype(np.int32), "int_val"),
    "DT_INT64": (np.dtype(np.int64), "int64_val"),
    "DT_UINT8": (np.dtype(np.uint8), "int_val"),
    "DT_UINT16": (np.dtype(np.uint16), "int_val"),
    "DT_UINT32": (np.dtype(np.uint32), "uint32_val"),
    "DT_UINT64": (np.dtype(np.uint64), "uint64_val"),
    "DT_BOOL": (np.dtype(np.bool_), "bool_val"),
    "DT_STRING": (np.dtype(object), "string_val"),
}
_NUMPY_TO_DT = {dtype: name for name, (dtype, _) in _DTYPES.items() if name != "DT_STRING"}


def dtype_label(name: str) -> str:
    """'DT_FLOAT' -> 'float', the way TensorFlow's messages say it."""
    return name.removeprefix("DT_").lower()


MAX_RANK = 32  # TensorFlow itself allows 254; no model input needs more than a handful


def tensor_shape(tensor, alias: str) -> list[int]:
    """The declared shape, checked before anything is allocated: known rank, non-negative dimensions."""
    if tensor.tensor_shape.unknown_rank:
        raise InvalidInputError(f"input {brief(alias)} has unknown rank; send a fully defined shape")
    dims = tensor.tensor_shape.dim
    if len(dims) > MAX_RANK:
        raise InvalidInputError(f"input {brief(alias)} has rank {len(dims)}, more than {MAX_RANK}")
    shape = [d.size for d in dims]
    if any(size < 0 for size in shape):
        raise InvalidInputError(f"input {brief(alias)} has a negative dimension in shape {brief(shape)}")
    return shape


def tensor_to_numpy(tensor, alias: str, max_elements: int | None = None) -> np.ndarray:
    """Decode a request tensor; errors name the input `alias` and say what was expected.

    `max_elements` bounds what the request may make the server allocate: the declared shape is checked against
    it (in Python integers, which cannot wrap) before any array exists, including the TensorFlow rule that one
    value fills the whole shape.
    """
    names = api().DataTypeName
    dt_name = names.get(tensor.dtype, f"DataType({tensor.dtype})")
    if dt_name not in _DTYPES:
        raise InvalidInputError(f"input {brief(alias)} has dtype {dt_name}, which this server does not accept")
    dtype, field = _DTYPES[dt_name]
    shape = tensor_shape(tensor, alias)
    count = math.prod(shape)
    if max_elements is not None and count > max_elements:
        raise InvalidInputError(f"input {brief(alias)} has shape {brief(shape)}: {count} elements, more than the "
                                f"{max_elements} one request may carry to this model")
    if tensor.tensor_content:
        if dt_name == "DT_STRING":
            raise InvalidInputError(f"input {brief(alias)}: string tensors must use string_val, not tensor_content")
        expected = count * dtype.itemsize
        if len(tensor.tensor_content) != expected:
            raise InvalidInputError(
                f"input {brief(alias)}: tensor_content has {len(tensor.tensor_content)} bytes but shape {brief(shape)} "
                f"of {dtype_label(dt_name)} needs {expected}")
        return np.frombuffer(tensor.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    values = getattr(tensor, field)
    if not tensor.tensor_shape.dim and not tensor.HasField("tensor_shape") and len(values) > 1:
        shape, count = [len(values)], len(values)  # no shape sent at all: read the values as a vector
        if max_elements is not None and count > max_elements:
            raise InvalidInputError(f"input {brief(alias)} holds {count} values, more than the {max_elements} "
                                    "one request may carry to this model")
    if len(values) not in (count, 1) or (len(values) == 1 and count == 0):
        raise InvalidInputError(f"input {brief(alias)}: {field} has {len(values)} values but shape {brief(shape)} "
                                f"needs {count}")
    if dt_name == "DT_HALF":
        array = np.asarray(values, dtype=np.uint16).view(np.float16)
    elif dt_name == "DT_STRING":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
    else:
        array = np.asarray(values, dtype=dtype)
    if array.size == count:
        return array.reshape(shape)
    return np.full(shape, array[0], dtype=dtype)  # TensorFlow semantics: one value fills the tensor


def numpy_to_tensor(array: np.ndarray):
    """Encode an output array; numbers go in tensor_content (compact, what TF Serving sends)."""
    tensor = api().TensorProto()
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind in "SU":
        tensor.dtype = api().DataType["DT_STRING"]
        tensor.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1))
    else:
        name = _NUMPY_TO_DT.get(array.dtype)
        if name is None:
            raise TypeError(f"cannot encode numpy dtype {array.dtype} as a TensorProto")
        tensor.dtype = api().DataType[name]
        tensor.tensor_content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    for size in array.shape:
        tensor.tensor_shape.dim.add().size = size
    return tensor


def numpy_dtype_name(dtype) -> str:
    """TensorFlow/numpy dtype -> 'DT_FLOAT'-style name."""
    dtype = np.dtype(dtype)
    if dtype == object or dtype.kind in "SU":
        return "DT_STRING"
    return _NUMPY_TO_DT[dtype]
