"""The README's main job: our trained weights on the bundled sample (no ../shared needed)."""
from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

from tinycaffe.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]


def test_readme_main_job_scores_the_trained_full_net():
    readme = (REPO / "README.md").read_text()
    command = re.search(r"\.venv/bin/tinycaffe (test [^\n]+)", readme).group(1).split()
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(out):
            assert cli_main(command + ["--quiet"]) == 0
    finally:
        os.chdir(cwd)
    printed = out.getvalue()
    # The figure the README quotes for the 1,000 sample images.
    assert re.search(r"^accuracy = 0\.717$", printed, re.M), printed
