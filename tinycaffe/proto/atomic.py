"""Write a file whole or not at all: a Ctrl-C never leaves half a caffemodel behind."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable


def write_atomic(path: str | os.PathLike, pieces: Iterable[bytes | memoryview]) -> None:
    """Write ``pieces`` to a temporary file beside ``path``, then rename it into place.

    The file gets the usual permissions (the process umask), unlike a mkstemp
    file. Raises OSError; the temporary file is removed on any failure.
    """
    target = Path(path)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            for piece in pieces:
                f.write(piece)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
