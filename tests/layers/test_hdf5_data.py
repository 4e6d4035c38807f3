"""HDF5Data: rows from the datasets named like the tops, cycling across the listed files."""
import builtins

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinycaffe.errors import DataError, NetError

from .util import make_layer

h5py = pytest.importorskip("h5py")


def write_h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f.create_dataset(name, data=value)
    return path


def write_list(path, files):
    path.write_text("".join(f"{f}\n" for f in files))
    return path


def text(source, batch_size, shuffle=False, tops=("data", "label")):
    top_lines = " ".join(f'top: "{t}"' for t in tops)
    return (f'type: "HDF5Data" {top_lines} hdf5_data_param {{ source: "{source}" '
            f'batch_size: {batch_size} shuffle: {str(shuffle).lower()} }}')


def batches(layer, tops, count):
    out = []
    for _ in range(count):
        layer.forward([], tops)
        out.append([np.array(t.data) for t in tops])
    return out


def make_files(tmp_path, sizes, row_shape=(2, 3)):
    """Files whose data rows hold (file index * 100 + row) everywhere; label = the same number."""
    files = []
    for i, n in enumerate(sizes):
        ids = np.arange(n) + 100 * i
        data = np.broadcast_to(ids.reshape((n,) + (1,) * len(row_shape)), (n, *row_shape)).astype(np.float64)
        files.append(write_h5(tmp_path / f"part{i}.h5", data=data, label=ids.astype(np.int32)))
    return files


def expected_sequence(sizes, total):
    """Caffe's order without shuffle: every row of file 0, then file 1, ..., then back to file 0."""
    seq = [100 * i + r for i, n in enumerate(sizes) for r in range(n)]
    return [seq[k % len(seq)] for k in range(total)]


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.integers(1, 7), st.integers(1, 4))
def test_rows_cycle_across_files_in_order(tmp_path_factory, sizes, batch_size, n_batches):
    tmp_path = tmp_path_factory.mktemp("h5")
    files = make_files(tmp_path, sizes)
    layer, _, tops = make_layer(text(write_list(tmp_path / "list.txt", files), batch_size), [], n_tops=2)
    assert tops[0].shape == (batch_size, 2, 3) and tops[1].shape == (batch_size,)
    got = batches(layer, tops, n_batches)
    labels = np.concatenate([b[1] for b in got])
    np.testing.assert_array_equal(labels, expected_sequence(sizes, batch_size * n_batches))
    for data, label in got:
        np.testing.assert_array_equal(data, np.broadcast_to(label[:, None, None], data.shape))
        assert data.dtype == np.float32


def test_shuffle_permutes_rows_and_files_but_keeps_pairs(tmp_path):
    sizes = [4, 3]
    files = make_files(tmp_path, sizes)
    layer, _, tops = make_layer(text(write_list(tmp_path / "list.txt", files), 7, shuffle=True), [], n_tops=2)
    seen = []
    for data, label in batches(layer, tops, 6):
        np.testing.assert_array_equal(data[:, 0, 0], label)
        seen.append(label)
    # each pass of 7 rows covers every row once, whole files at a time
    for epoch in seen:
        assert sorted(epoch) == [0, 1, 2, 3, 100, 101, 102]
        first_file = epoch[0] // 100
        n_first = sizes[int(first_file)]
        assert set(epoch[:n_first] // 100) == {first_file}
    assert any(list(e) != expected_sequence(sizes, 7) for e in seen)


def test_relative_paths_resolve_against_the_current_directory(tmp_path, monkeypatch):
    make_files(tmp_path, [3])
    write_list(tmp_path / "list.txt", ["part0.h5", ""])
    monkeypatch.chdir(tmp_path)
    layer, _, tops = make_layer(text("list.txt", 2, tops=("label",)), [], n_tops=1)
    layer.forward([], tops)
    np.testing.assert_array_equal(tops[0].data, [0, 1])


def test_one_dimensional_and_higher_rank_datasets(tmp_path):
    f = write_h5(tmp_path / "a.h5", x=np.arange(24).reshape(2, 3, 2, 2), y=np.array([5, 6]))
    layer, _, tops = make_layer(text(write_list(tmp_path / "l.txt", [f]), 3, tops=("x", "y")), [], n_tops=2)
    assert tops[0].shape == (3, 3, 2, 2) and tops[1].shape == (3,)
    layer.forward([], tops)
    np.testing.assert_array_equal(tops[1].data, [5, 6, 5])
    np.testing.assert_array_equal(tops[0].data[2], np.arange(12).reshape(3, 2, 2))


def test_missing_list_file(tmp_path):
    with pytest.raises(DataError, match="nolist.txt"):
        make_layer(text(tmp_path / "nolist.txt", 2), [], n_tops=2)


def test_empty_list_file(tmp_path):
    with pytest.raises(DataError, match="names no files"):
        make_layer(text(write_list(tmp_path / "l.txt", []), 2), [], n_tops=2)


def test_missing_h5_file(tmp_path):
    with pytest.raises(DataError, match="gone.h5"):
        make_layer(text(write_list(tmp_path / "l.txt", [tmp_path / "gone.h5"]), 2), [], n_tops=2)


def test_missing_dataset_names_file_and_dataset(tmp_path):
    f = write_h5(tmp_path / "a.h5", data=np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"a\.h5.*'label'"):
        make_layer(text(write_list(tmp_path / "l.txt", [f]), 2), [], n_tops=2)


def test_mismatched_first_dimensions(tmp_path):
    f = write_h5(tmp_path / "a.h5", data=np.zeros((2, 3)), label=np.zeros(3))
    with pytest.raises(DataError, match=r"a\.h5.*first dimensions differ"):
        make_layer(text(write_list(tmp_path / "l.txt", [f]), 2), [], n_tops=2)


def test_later_file_with_other_row_shape_is_named(tmp_path):
    a = write_h5(tmp_path / "a.h5", data=np.zeros((2, 3)), label=np.zeros(2))
    b = write_h5(tmp_path / "b.h5", data=np.zeros((2, 4)), label=np.zeros(2))
    layer, _, tops = make_layer(text(write_list(tmp_path / "l.txt", [a, b]), 2), [], n_tops=2)
    layer.forward([], tops)
    with pytest.raises(DataError, match=r"b\.h5.*row shapes"):
        layer.forward([], tops)


def test_bad_params(tmp_path):
    f = write_h5(tmp_path / "a.h5", data=np.zeros((2, 3)), label=np.zeros(2))
    lst = write_list(tmp_path / "l.txt", [f])
    with pytest.raises(NetError, match="batch_size"):
        make_layer(text(lst, 0), [], n_tops=2)
    with pytest.raises(NetError, match="transform"):
        make_layer(text(lst, 2) + " transform_param { scale: 2 }", [], n_tops=2)


def test_h5py_missing_says_how_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError("no h5py")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(DataError, match=r"pip install 'tinycaffe\[hdf5\]'"):
        make_layer(text(tmp_path / "l.txt", 2), [], n_tops=2)
