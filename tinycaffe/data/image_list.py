"""Caffe's image list files: one ``path label`` per line.

Used by the ImageData layer and ``convert_imageset``. As in Caffe (since
2017), the label is the last space-separated field, so a path may contain
spaces; unlike Caffe, a line that has no integer label is an error naming the
file and line instead of silently ending the list, and blank lines are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinycaffe.errors import DataError


@dataclass(frozen=True)
class ImageListEntry:
    """One line of a list file: the image path as written, its label, and the 1-based line number."""

    name: str
    label: int
    line: int


def read_image_list(path: str | Path) -> list[ImageListEntry]:
    """Parse a list file into entries, in file order.

    Raises DataError naming the file (and the line) when it cannot be read,
    a line has no label, a label is not an int32, or the file lists nothing.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise DataError(f"{path}: cannot read image list: {e.strerror or e}") from None
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise DataError(f"{path} line {number}: expected 'path label', got {line!r}")
        name, label_text = parts
        try:
            label = int(label_text)
        except ValueError:
            raise DataError(f"{path} line {number}: label {label_text!r} is not an integer "
                            f"(line {line!r})") from None
        if not -2**31 <= label < 2**31:
            raise DataError(f"{path} line {number}: label {label} does not fit in int32")
        entries.append(ImageListEntry(name, label, number))
    if not entries:
        raise DataError(f"{path}: image list holds no 'path label' lines")
    return entries
