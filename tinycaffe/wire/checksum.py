"""Payload checksums: CRC32 (zlib, always there) and XXH3 (``xxhash``, about 5x faster).

A frame's header says which one its payload carries (FLAG_CRC or FLAG_XXH3;
the value is 32 bits: CRC32, or the low half of XXH3-64). Each side lists in
its HELLO the ones it can check; after the handshake frames use XXH3 when
both sides have it, else CRC32. HELLO and ERROR frames always use CRC32.
Over TLS both ends of ``tinycaffe serve`` turn payload checksums off (HELLO
``checksum: false``): TLS authenticates every record already.
"""
from __future__ import annotations

import zlib

try:
    import xxhash as _xxhash
except ImportError:  # optional: CRC32 then
    _xxhash = None

CRC32 = "crc32"
XXH3 = "xxh3"
_MASK = 0xFFFFFFFF


def available() -> tuple[str, ...]:
    """The algorithms this side can compute, fastest first."""
    return (XXH3, CRC32) if _xxhash is not None else (CRC32,)


def choose(mine: tuple[str, ...], theirs: tuple[str, ...]) -> str:
    """The fastest algorithm both sides have (CRC32 is always shared)."""
    return XXH3 if XXH3 in mine and XXH3 in theirs and _xxhash is not None else CRC32


class Running:
    """A checksum computed piece by piece over a payload."""

    __slots__ = ("algo", "_crc", "_h")

    def __init__(self, algo: str) -> None:
        self.algo = algo
        self._crc = 0
        self._h = _xxhash.xxh3_64() if algo == XXH3 else None

    def update(self, data) -> None:
        if self._h is not None:
            self._h.update(data)
        else:
            self._crc = zlib.crc32(data, self._crc)

    def value(self) -> int:
        """The 32-bit value carried in the header."""
        return (self._h.intdigest() & _MASK) if self._h is not None else self._crc
