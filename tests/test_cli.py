"""The command line: `time` output, Caffe's spellings, and clean errors."""
from __future__ import annotations

import contextlib
import io

import pytest

from tinycaffe.cli import main

NET = """
name: "tiny"
layer { name: "d" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: [4, 3, 8, 8] } shape { dim: [4] }
                           data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def run(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "tiny.prototxt"
    path.write_text(NET)
    return str(path)


def test_time_prints_every_layer_and_the_totals(model):
    code, out, _ = run(["time", model, "--iterations", "3", "--phase", "train", "--backward"])
    assert code == 0
    for layer in ("d", "conv", "ip", "loss"):
        assert f"{layer}\tforward:" in out
    assert "conv\tbackward:" in out
    assert "Average Forward pass:" in out and "Average Forward-Backward:" in out


def test_caffe_spelling_and_means(model):
    code, out, _ = run(["test", "-model", model, "-iterations", "2"])
    assert code == 0
    assert "Batch 1, loss = " in out and out.rstrip().splitlines()[-1].startswith("loss = ")


@pytest.mark.parametrize("args, message", [
    (["test", "nope.prototxt"], "nope.prototxt: no such model file"),
    (["test", "MODEL", "--iterations", "0"], "--iterations must be positive"),
    (["test", "MODEL", "--threads", "0"], "--threads must be positive"),
    (["test", "MODEL", "--weights", "missing.caffemodel"], "missing.caffemodel: no such weights file"),
])
def test_errors_are_one_line_and_exit_1(model, args, message):
    code, _, err = run([a.replace("MODEL", model) for a in args])
    assert code == 1
    assert err.startswith("tinycaffe: error: ") and message in err and "Traceback" not in err


# -- convert-imageset and compute-image-mean (Caffe's tools) -------------------------------

@pytest.fixture
def image_folder(tmp_path):
    """Three 5x4 RGB images (two PNG, one JPEG) and a list file; returns (root/, list, arrays)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    arrays = [rng.integers(0, 256, (5, 4, 3), dtype=np.uint8) for _ in range(3)]
    names = ["a.png", "sub/b.png", "c.jpg"]
    for name, arr in zip(names, arrays):
        Image.fromarray(arr).save(root / name)
    listfile = tmp_path / "list.txt"
    listfile.write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    return f"{root}/", str(listfile), arrays


def _records(path, backend="lmdb"):
    from tinycaffe.proto import caffe_pb2

    if backend == "leveldb":
        import plyvel

        db = plyvel.DB(str(path))
        items = list(db.iterator())
        db.close()
    else:
        import lmdb

        env = lmdb.open(str(path), readonly=True, lock=False)
        with env.begin() as txn:
            items = list(txn.cursor())
        env.close()
    return [(k.decode(), caffe_pb2.Datum.FromString(v)) for k, v in items]


def test_convert_imageset_writes_caffe_keys_and_raw_bgr_datums(image_folder, tmp_path):
    import numpy as np

    from tinycaffe.data.image import read_image, resize_linear

    root, listfile, arrays = image_folder
    code, out, _ = run(["convert-imageset", "--resize_height=6", "-resize_width", "7", root, listfile,
                        str(tmp_path / "db")])
    assert code == 0, out
    assert "Processed 3 files." in out
    records = _records(tmp_path / "db")
    assert [k for k, _ in records] == ["00000000_a.png", "00000001_sub/b.png", "00000002_c.jpg"]
    key, d = records[1]
    assert (d.channels, d.height, d.width, d.label, d.encoded) == (3, 6, 7, 1, False)
    expected = resize_linear(np.ascontiguousarray(arrays[1][..., ::-1]), 6, 7).transpose(2, 0, 1)
    assert d.data == expected.tobytes()
    jpeg = read_image(root + "c.jpg", 6, 7).transpose(2, 0, 1)  # the JPEG as decoded, then resized
    assert records[2][1].data == jpeg.tobytes()


def test_convert_imageset_gray_shuffle_and_leveldb(image_folder, tmp_path):
    pytest.importorskip("plyvel")
    root, listfile, _ = image_folder
    args = ["convert_imageset", "-gray", "-shuffle", "--seed", "5", "-backend", "leveldb", root, listfile]
    assert run(args + [str(tmp_path / "a")])[0] == 0
    assert run(args + [str(tmp_path / "b")])[0] == 0
    a, b = _records(tmp_path / "a", "leveldb"), _records(tmp_path / "b", "leveldb")
    assert [k for k, _ in a] == [k for k, _ in b]  # --seed makes -shuffle repeatable
    assert sorted(k.split("_", 1)[1] for k, _ in a) == ["a.png", "c.jpg", "sub/b.png"]
    assert all(d.channels == 1 and len(d.data) == 5 * 4 for _, d in a)


def test_convert_imageset_encoded_keeps_files_or_reencodes(image_folder, tmp_path):
    from pathlib import Path

    root, listfile, arrays = image_folder
    assert run(["convert-imageset", "-encoded", root, listfile, str(tmp_path / "e")])[0] == 0
    records = _records(tmp_path / "e")
    assert all(d.encoded for _, d in records)
    assert records[2][1].data == Path(root, "c.jpg").read_bytes()  # the file itself, as Caffe stores it
    assert run(["convert-imageset", "-encode_type", "png", root, listfile, str(tmp_path / "p")])[0] == 0
    png = _records(tmp_path / "p")[2][1]
    assert png.encoded and png.data[:8] == b"\x89PNG\r\n\x1a\n" and png.label == 2


def test_convert_imageset_skips_unreadable_images_with_a_warning(image_folder, tmp_path):
    root, listfile, _ = image_folder
    with open(listfile, "a") as f:
        f.write("missing.png 9\n")
    code, out, err = run(["convert-imageset", root, listfile, str(tmp_path / "db")])
    assert code == 0
    assert "list.txt line 4: skipped: " in err and "missing.png" in err
    assert "1 unreadable image(s) skipped" in out
    assert len(_records(tmp_path / "db")) == 3


def test_convert_imageset_check_size_and_bad_lists_fail_cleanly(image_folder, tmp_path):
    from PIL import Image

    root, listfile, _ = image_folder
    Image.new("RGB", (9, 9)).save(root + "sub/b.png")
    code, _, err = run(["convert-imageset", "-check_size", root, listfile, str(tmp_path / "db")])
    assert code == 1 and "list.txt line 2" in err and "-check_size" in err and "Traceback" not in err
    assert not (tmp_path / "db").exists()  # nothing half-written left behind
    (tmp_path / "bad.txt").write_text("a.png x\n")
    code, _, err = run(["convert-imageset", root, str(tmp_path / "bad.txt"), str(tmp_path / "db")])
    assert code == 1 and "bad.txt line 1: label 'x' is not an integer" in err


def test_compute_image_mean_writes_the_binaryproto_caffe_writes(image_folder, tmp_path):
    import numpy as np

    from tinycaffe.proto.binaryproto import read_blob

    root, listfile, _ = image_folder
    assert run(["convert-imageset", root, listfile, str(tmp_path / "db")])[0] == 0
    code, out, _ = run(["compute-image-mean", str(tmp_path / "db"), str(tmp_path / "mean.binaryproto")])
    assert code == 0 and "Number of channels: 3" in out
    mean = read_blob(tmp_path / "mean.binaryproto")
    stack = np.stack([np.frombuffer(d.data, np.uint8).reshape(3, 5, 4) for _, d in _records(tmp_path / "db")])
    np.testing.assert_allclose(mean, stack.astype(np.float32).mean(axis=0)[None], rtol=1e-6)
    assert f"mean_value channel [0]: {stack[:, 0].mean():g}" in out
    code, _, err = run(["compute_image_mean", "-backend", "lmdb", str(tmp_path / "nope")])
    assert code == 1 and "nope: LMDB not found" in err


@pytest.mark.parametrize("flags, gray, shuffled", [
    (["-gray"], True, False), (["--gray=true", "-shuffle=false"], True, False),
    (["-gray=false", "--shuffle=1"], False, True), (["-nogray", "-noshuffle"], False, False),
])
def test_convert_imageset_takes_gflags_boolean_spellings(flags, gray, shuffled):
    from tinycaffe.cli.main import build_parser

    args = build_parser().parse_args(["convert_imageset", *flags, "root/", "list.txt", "db"])
    assert (args.gray, args.shuffle) == (gray, shuffled)
    assert (args.root_folder, args.list_file, args.db_name) == ("root/", "list.txt", "db")
