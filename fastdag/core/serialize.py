"""Turning values into bytes and back, keeping large buffers out of band.

``dumps`` returns a small pickled header plus the raw buffers of anything
exposing the buffer protocol (numpy arrays, bytes, Pillow image data):
pickle protocol 5 lets the store place those buffers in shared memory and
``loads`` rebuild the object around them without a copy. cloudpickle does
the pickling, so functions and classes from ``__main__``, notebooks and
closures travel by value. pyarrow Tables and RecordBatches travel as an
Arrow IPC stream, which Arrow reads back zero-copy.
"""

from __future__ import annotations

import functools
import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType
from typing import Any

import cloudpickle

from .portable import reduce_exception

PICKLE = 0
ARROW_TABLE = 1
ARROW_BATCH = 2


@dataclass
class Payload:
    """A serialized value: header bytes, out-of-band buffers, and how to read them."""

    header: bytes
    buffers: list[memoryview]
    kind: int = PICKLE

    @property
    def nbytes(self) -> int:
        return len(self.header) + sum(b.nbytes for b in self.buffers)


def dumps(obj: Any, array_reducer: Callable[[Any], tuple | None] | None = None) -> Payload:
    """Serialize ``obj``; raises pickle errors as they come (callers name the task).

    ``array_reducer(array)`` may return a reduce tuple to pickle a numpy
    array by reference instead of by value (see ``store.constants``), or
    None to pickle it as usual.
    """
    cls = type(obj)
    if cls in _SCALARS and (cls is not str or len(obj) < OUT_OF_BAND_MIN):
        # Most task results: no pickler object to set up (a large str goes out of band).
        return Payload(pickle.dumps(obj, 5), [], PICKLE)
    kind = _arrow_kind(obj)
    if kind:
        return Payload(b"", [memoryview(_arrow_ipc(obj))], kind)
    buffers: list[memoryview] = []

    def keep(buf: pickle.PickleBuffer) -> None:
        buffers.append(buf.raw())

    out = io.BytesIO()
    pickler = _Pickler(out, protocol=5, buffer_callback=keep)
    pickler.array_reducer = array_reducer
    pickler.dump(_large_text_out_of_band(obj))
    return Payload(out.getvalue(), buffers, PICKLE)


class _OutOfBand:
    """A large bytes, bytearray or str pickled as one out-of-band buffer.

    pickle writes these three types itself, in-band, without asking
    ``reducer_override``; wrapping the value (at the top level, or as an
    item of a top-level list, tuple or dict) sends its bytes through shared
    memory instead of the control message. Reading makes the one copy the
    type needs (a bytes object owns its memory).
    """

    __slots__ = ("value",)

    def __init__(self, value: bytes | bytearray | str):
        self.value = value

    def __reduce__(self):
        value = self.value
        if type(value) is str:
            return (decode_text, (pickle.PickleBuffer(text_buffer(value)),))
        return (type(value), (pickle.PickleBuffer(value),))


def text_buffer(text: str) -> memoryview | bytes:
    """The UTF-8 bytes of ``text``, to write out: for an ASCII str (most large text),
    a read-only view of the str's own characters, without a copy; else an encoded copy.

    CPython keeps an ASCII str's characters as their UTF-8, and
    ``PyUnicode_AsUTF8AndSize`` (public C API) hands out a pointer to them. A
    copy of 20 MB of text costs some 15 ms here, most of it first touches of
    fresh memory. The view holds a reference to the str, which outlives it.
    """
    as_utf8 = _as_utf8() if text.isascii() else None
    if as_utf8 is None:
        return text.encode("utf-8", "surrogatepass")
    import ctypes
    size = ctypes.c_ssize_t()
    address = as_utf8(text, ctypes.byref(size))
    chars = (ctypes.c_ubyte * size.value).from_address(address)
    chars.owner = text  # the view keeps the array alive, the array the str
    return memoryview(chars).cast("B").toreadonly()


@functools.lru_cache(maxsize=1)
def _as_utf8() -> Any:
    """``PyUnicode_AsUTF8AndSize`` through ctypes (imported once, when first needed),
    or None where the interpreter has no such function (not CPython)."""
    try:
        import ctypes
        function = ctypes.pythonapi.PyUnicode_AsUTF8AndSize
    except (ImportError, AttributeError):
        return None
    function.restype = ctypes.c_void_p
    function.argtypes = [ctypes.py_object, ctypes.POINTER(ctypes.c_ssize_t)]
    return function


def decode_text(buffer: Any) -> str:
    """The str ``text_buffer`` wrote out (one copy: a str owns its memory)."""
    return str(buffer, "utf-8", "surrogatepass")


_TEXT = (bytes, bytearray, str)


def _large_text_out_of_band(obj: Any) -> Any:
    cls = type(obj)
    if cls in _TEXT:
        return _OutOfBand(obj) if len(obj) >= OUT_OF_BAND_MIN else obj
    if cls in (list, tuple) and any(type(v) in _TEXT and len(v) >= OUT_OF_BAND_MIN for v in obj):
        return cls(_large_text_out_of_band(v) if type(v) in _TEXT else v for v in obj)
    if cls is dict and any(type(v) in _TEXT and len(v) >= OUT_OF_BAND_MIN for v in obj.values()):
        return {k: _large_text_out_of_band(v) if type(v) in _TEXT else v for k, v in obj.items()}
    return obj


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, plus: large non-contiguous numpy arrays go out of band too.

    numpy pickles a strided view (a block of a bigger matrix, a tile of an
    image) in-band, into the header that control messages carry. One
    contiguous copy here sends it through shared memory like any other array.
    """

    array_reducer: Callable[[Any], tuple | None] | None = None

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is memoryview:
            reduced = _reduce_memoryview(obj)
            if reduced is not None:
                return reduced
        if type(obj).__name__ == "ndarray" and type(obj).__module__ == "numpy":
            if self.array_reducer is not None:
                by_reference = self.array_reducer(obj)
                if by_reference is not None:
                    return by_reference
            flags = obj.flags
            if not (flags.c_contiguous or flags.f_contiguous) and obj.nbytes >= OUT_OF_BAND_MIN \
                    and not obj.dtype.hasobject:
                import numpy as np
                return np.ascontiguousarray(obj).__reduce_ex__(5)
        elif type(obj).__module__.startswith("PIL.") and _pil_shareable(obj):
            # A writeable buffer, so that readers get writeable pixels (bytes would be read-only).
            pixels = pickle.PickleBuffer(bytearray(obj.tobytes()))
            return (_pil_image, (obj.mode, obj.size, dict(obj.info), pixels))
        elif type(obj) is CodeType and _CODE_REDUCE is not None:
            return _code_with_filename(obj)
        elif isinstance(obj, BaseException):  # a result, or an argument: as a raised one travels
            reduced = reduce_exception(obj)
            if reduced is not None:
                return reduced
        reduced = super().reducer_override(obj)
        if type(reduced) is tuple and reduced[0] is _MAKE_CLASS and "__slots__" in obj.__dict__:
            return _with_slots(reduced, obj.__slots__)
        return reduced


_CODE_REDUCE = getattr(cloudpickle.cloudpickle, "_code_reduce", None)


def _code_with_filename(code: CodeType) -> tuple:
    """The code of a function sent by value, keeping its file name.

    cloudpickle writes ``<dynamic-code>`` instead (for byte-identical pickles
    across machines), so a task from a script or notebook that fails in a
    worker shows ``File "<dynamic-code>", line 9`` and no source line; with
    the real name the worker's traceback quotes the line, as a local run's does.
    """
    func, args = _CODE_REDUCE(code)
    return func, tuple(code.co_filename if type(a) is str and a == "<dynamic-code>" else a
                       for a in args)


_MAKE_CLASS = getattr(cloudpickle.cloudpickle, "_make_skeleton_class", None)


def _with_slots(reduced: tuple, slots: Any) -> tuple:
    """A class sent by value (``__main__``, a notebook) made again with its ``__slots__``.

    cloudpickle makes the class first and sets ``__slots__`` afterwards,
    when it no longer creates slots: the copy in a worker has a ``__dict__``
    instead, its instances pickle their fields as one, and the caller's
    class, which has no ``__dict__``, cannot load them back. Passing
    ``__slots__`` to the class statement's namespace, as the original was
    made, keeps the two alike.
    """
    func, args, *rest = reduced
    kwargs = {**args[3], "__slots__": slots}
    return (func, (*args[:3], kwargs, *args[4:]), *rest)


OUT_OF_BAND_MIN = 64 * 1024
# Pillow modes that need no palette; frombuffer() maps most of them without a copy
# (RGB is stored with 4 bytes a pixel, so reading it decodes once).
_PIL_MODES = frozenset({"L", "RGB", "RGBA", "RGBX", "CMYK", "I", "F", "LA", "La", "RGBa", "I;16"})


def _pil_shareable(image: Any) -> bool:
    from PIL import Image
    return isinstance(image, Image.Image) and image.mode in _PIL_MODES and \
        image.width * image.height >= OUT_OF_BAND_MIN // 4


def _pil_image(mode: str, size: tuple[int, int], info: dict, buffer: Any) -> Any:
    """A PIL image on the given pixels, without copying them (the mapping is private)."""
    from PIL import Image
    image = Image.frombuffer(mode, size, buffer, "raw", mode, 0, 1)
    image.readonly = 0  # the buffer is writeable: a private copy-on-write mapping
    image.info.update(info)
    return image


def _reduce_memoryview(view: memoryview) -> tuple | None:
    """A memoryview stays a memoryview (cloudpickle alone sends ``bytes``), its memory
    out of band like an array's; None for views no single ``cast`` can rebuild."""
    fmt = view.format.lstrip("@")
    if len(fmt) != 1 or view.ndim == 0:
        return None
    flat = view if view.c_contiguous else memoryview(bytearray(view.tobytes()))
    return (_rebuild_memoryview, (pickle.PickleBuffer(flat.cast("B")), fmt, view.shape,
                                  view.readonly))


def _rebuild_memoryview(buf: Any, fmt: str, shape: tuple, readonly: bool) -> memoryview:
    view = memoryview(buf).cast("B")
    if fmt != "B" or len(shape) != 1:
        view = view.cast(fmt, shape)
    return view.toreadonly() if readonly and not view.readonly else view


_SCALARS = frozenset({int, float, bool, complex, str, type(None)})


def loads(header: bytes, buffers: list, kind: int = PICKLE) -> Any:
    """Rebuild a value from ``dumps`` output; buffers are used in place."""
    if kind == PICKLE:
        return pickle.loads(header, buffers=buffers)
    import pyarrow as pa
    reader = pa.ipc.open_stream(pa.py_buffer(buffers[0]))
    if kind == ARROW_TABLE:
        return reader.read_all()
    return reader.read_next_batch()


def _arrow_kind(obj: Any) -> int:
    module = type(obj).__module__
    if not module.startswith("pyarrow"):
        return 0
    import pyarrow as pa
    if isinstance(obj, pa.Table):
        return ARROW_TABLE
    if isinstance(obj, pa.RecordBatch):
        return ARROW_BATCH
    return 0


def _arrow_ipc(obj: Any):
    import pyarrow as pa
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, obj.schema) as writer:
        if isinstance(obj, pa.Table):
            writer.write_table(obj)
        else:
            writer.write_batch(obj)
    return sink.getvalue()


def describe_unpicklable(value: Any, exc: BaseException) -> str:
    """Name the type that could not be pickled, for an error message."""
    text = f"{type(value).__module__}.{type(value).__qualname__} cannot be pickled ({exc})"
    if "'generator' object" in str(exc):  # a generator function as a task, most likely
        text += "; a generator only runs where it is made: return a list (list(...)) instead"
    return text
