"""Shared fixtures: where ../shared is, and data derived from it once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the same examples every time (a red CI must mean a change broke
# something); developers' runs keep exploring new random examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

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
