"""TensorProto <-> numpy, accepting both `tensor_content` and the typed `*_val` fields, as TF Serving does."""
from __future__ import annotations

import numpy as np

from brainwave.errors import InvalidInputError
from brainwave.serving.protocol import api

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


def tensor_to_numpy(tensor, alias: str) -> np.ndarray:
    """Decode a request tensor; errors name the input `alias` and say what was expected."""
    names = api().DataTypeName
    dt_name = names.get(tensor.dtype, f"DataType({tensor.dtype})")
    if dt_name not in _DTYPES:
        raise InvalidInputError(f"input {alias!r} has dtype {dt_name}, which this server does not accept")
    dtype, field = _DTYPES[dt_name]
    if tensor.tensor_shape.unknown_rank:
        raise InvalidInputError(f"input {alias!r} has unknown rank; send a fully defined shape")
    shape = [d.size for d in tensor.tensor_shape.dim]
    if any(size < 0 for size in shape):
        raise InvalidInputError(f"input {alias!r} has a negative dimension in shape {shape}")
    count = int(np.prod(shape, dtype=np.int64))
    if tensor.tensor_content:
        if dt_name == "DT_STRING":
            raise InvalidInputError(f"input {alias!r}: string tensors must use string_val, not tensor_content")
        expected = count * dtype.itemsize
        if len(tensor.tensor_content) != expected:
            raise InvalidInputError(
                f"input {alias!r}: tensor_content has {len(tensor.tensor_content)} bytes but shape {shape} "
                f"of {dtype_label(dt_name)} needs {expected}")
        return np.frombuffer(tensor.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    values = getattr(tensor, field)
    if dt_name == "DT_HALF":
        array = np.asarray(values, dtype=np.uint16).view(np.float16)
    elif dt_name == "DT_STRING":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
    else:
        array = np.asarray(values, dtype=dtype)
    if not tensor.tensor_shape.dim and not tensor.HasField("tensor_shape") and len(values) > 1:
        shape, count = [len(values)], len(values)  # no shape sent at all: read the values as a vector
    if array.size == count:
        return array.reshape(shape)
    if array.size == 1 and count > 1:  # TensorFlow semantics: one value fills the tensor
        return np.full(shape, array[0], dtype=dtype)
    raise InvalidInputError(f"input {alias!r}: {field} has {array.size} values but shape {shape} needs {count}")


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
