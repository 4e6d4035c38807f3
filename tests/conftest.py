"""Shared fixtures: where ../shared is, and data derived from it once per session."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REPO = Path(__file__).resolve().parents[1]


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with a message saying it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared not found ({path}): this check needs the project's shared data")
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    return shared_path()
