"""Where a data path written in a prototxt points.

Caffe opens a relative ``source`` or ``mean_file`` relative to the working
directory, and so do we first. Our own prototxts name the bundled sample as
``tinycaffe/sample/...``: from the repository root that is the package's
folder, so real Caffe, run there, reads the same files. Run from anywhere
else, a relative path that starts with ``tinycaffe/`` and does not exist
there is looked up in the installed package instead (the parent folder of
the imported ``tinycaffe``), which is where ``pip install`` put the sample.
Nothing else changes meaning: an absolute path, or a path found relative to
the working directory, is used as written.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds tinycaffe/


def resolve_data_path(path: str | Path) -> Path:
    """``path`` as Caffe would open it, else (``tinycaffe/...`` only) inside the installed package.

    Returns the path to use; when neither exists it returns ``path``
    unchanged, so the caller's "not found" error names what the prototxt said.
    """
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    if p.parts and p.parts[0] == "tinycaffe":
        packaged = _PACKAGE_ROOT / p
        if packaged.exists():
            return packaged
    return p
