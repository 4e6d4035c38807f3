"""Data paths in a prototxt: the working directory first (Caffe's rule), then the installed package."""
from __future__ import annotations

from pathlib import Path

import tinycaffe
from tinycaffe.data.paths import resolve_data_path

PACKAGE = Path(tinycaffe.__file__).resolve().parent


def test_the_working_directory_wins_as_in_caffe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tinycaffe" / "sample").mkdir(parents=True)
    assert resolve_data_path("tinycaffe/sample") == Path("tinycaffe/sample")
    (tmp_path / "data.txt").write_text("x")
    assert resolve_data_path("data.txt") == Path("data.txt")


def test_a_missing_tinycaffe_path_is_found_in_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = resolve_data_path("tinycaffe/sample/mean.binaryproto")
    assert found == PACKAGE / "sample" / "mean.binaryproto" and found.is_file()


def test_other_paths_are_left_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_data_path("data/cifar10/cifar10_train_lmdb") == Path("data/cifar10/cifar10_train_lmdb")
    assert resolve_data_path("tinycaffe/no/such/file") == Path("tinycaffe/no/such/file")
    assert resolve_data_path(tmp_path / "abs") == tmp_path / "abs"
