"""Reading and writing protobuf text format (.prototxt) files.

Everything goes through protobuf's own text parser, which already accepts what
Caffe's C++ parser accepts (``#`` comments, ``dim: [1, 2]`` lists, an optional
colon before a nested message).  What this module adds is error reporting: any
failure comes out as a :class:`~tinycaffe.errors.FormatError` whose message
starts with ``FILE:LINE:COL:`` so editors and terminals can jump to it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TypeVar, Union

from google.protobuf import message as _message
from google.protobuf import text_format

from tinycaffe.errors import FormatError
from tinycaffe.proto import caffe_pb2

PathLike = Union[str, "os.PathLike[str]"]
M = TypeVar("M", bound=_message.Message)

# protobuf prefixes its messages with "LINE:COL : "; we restate the position
# in our own FILE:LINE:COL form, so strip theirs.
_POSITION_PREFIX = re.compile(r"^\s*\d+:\d+\s*:\s*")


def parse_message(text: str, message: M, source: str = "<string>") -> M:
    """Parse prototxt ``text`` into ``message`` (cleared first) and return it.

    ``source`` names the text in error messages (normally the file path).
    Raises FormatError "SOURCE:LINE:COL: what went wrong" on bad syntax,
    unknown fields or bad values.
    """
    message.Clear()  # text_format.Parse would otherwise append to repeated fields
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        line, col = exc.GetLine(), exc.GetColumn()
        detail = _POSITION_PREFIX.sub("", str(exc))
        if line is None:
            raise FormatError(f"{source}: {detail}") from None
        raise FormatError(f"{source}:{line}:{col}: {detail}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        # Values protobuf rejects after tokenising (e.g. out-of-range numbers)
        # arrive without a position.
        raise FormatError(f"{source}: {exc}") from None
    return message


def _read_text(path: PathLike) -> str:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise FormatError(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise FormatError(f"{os.fspath(path)}:{line}:{col}: not UTF-8 text") from None


def parse_net(text: str, source: str = "<string>") -> caffe_pb2.NetParameter:
    """Parse a net definition from prototxt text (no upgrade is applied)."""
    return parse_message(text, caffe_pb2.NetParameter(), source)


def read_net(path: PathLike) -> caffe_pb2.NetParameter:
    """Read a net definition (.prototxt) from ``path``; see ``upgrade_net``."""
    return parse_message(_read_text(path), caffe_pb2.NetParameter(), os.fspath(path))


def read_solver(path: PathLike) -> caffe_pb2.SolverParameter:
    """Read a solver definition (solver.prototxt) from ``path``."""
    return parse_message(_read_text(path), caffe_pb2.SolverParameter(), os.fspath(path))


def to_text(msg: _message.Message) -> str:
    """Render ``msg`` as prototxt text that ``parse_message`` reads back."""
    return text_format.MessageToString(msg)


def write_prototxt(msg: _message.Message, path: PathLike) -> None:
    """Write ``msg`` to ``path`` as prototxt text."""
    try:
        Path(path).write_text(to_text(msg), encoding="utf-8")
    except OSError as exc:
        raise FormatError(f"{os.fspath(path)}: cannot write: {exc.strerror or exc}") from None
