"""Shared fixtures: where ../shared is, and data derived from it once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the same examples every time (a red CI must mean a change broke
# something); developers' runs keep exploring new random examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
# A slow machine (an emulated ARM root, a loaded runner) sets TINYCAFFE_TEST_SLOW to a
# factor > 1: waits in the tests scale with it, and hypothesis drops its per-example
# deadline and runs fewer examples where a test does not fix its own count.
SLOW_FACTOR = max(1.0, float(os.environ.get("TINYCAFFE_TEST_SLOW", "1") or 1))
settings.register_profile("slow-machine", deadline=None, max_examples=20)
if os.environ.get("CI"):
    settings.load_profile("ci")
elif SLOW_FACTOR > 1:
    settings.load_profile("slow-machine")

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
