"""The ImageData layer: list file, root folder, resize, gray, shuffle, transform, and clear errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import tinycaffe
from tinycaffe.data.image import resize_linear
from tinycaffe.errors import DataError, NetError


@pytest.fixture
def images(tmp_path):
    """Five 6x5 RGB PNGs under tmp_path/imgs and a list file naming them with labels 10..14."""
    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    arrays, lines = [], []
    for i in range(5):
        arr = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / "imgs" / f"im {i}.png")  # a space in the name, as Caffe allows
        arrays.append(arr)
        lines.append(f"im {i}.png {10 + i}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n\n")
    return tmp_path, arrays


def net_text(tmp_path, params="", transform="", phase_rules=""):
    return f"""
    layer {{ name: "d" type: "ImageData" top: "data" top: "label" {phase_rules}
             transform_param {{ {transform} }}
             image_data_param {{ source: "{tmp_path / 'list.txt'}" root_folder: "{tmp_path}/imgs/" {params} }} }}
    """


def bgr_chw(arr):
    return arr[..., ::-1].transpose(2, 0, 1).astype(np.float32)


def test_batches_in_list_order_as_bgr_chw_with_transform(images):
    tmp_path, arrays = images
    net = tinycaffe.Net(net_text(tmp_path, "batch_size: 2", "scale: 0.5 mean_value: [1, 2, 3]"))
    net.forward()
    mean = np.array([1, 2, 3], np.float32).reshape(3, 1, 1)
    expected = np.stack([(bgr_chw(a) - mean) * 0.5 for a in arrays[:2]])
    np.testing.assert_array_equal(net.blobs["data"].data, expected)
    np.testing.assert_array_equal(net.blobs["label"].data, [10, 11])
    net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data, [12, 13])
    net.close()


def test_resize_gray_and_crop(images):
    tmp_path, arrays = images
    net = tinycaffe.Net(net_text(tmp_path, "batch_size: 1 new_height: 9 new_width: 8 is_color: false",
                                 "crop_size: 4"))
    net.forward()
    assert net.blobs["data"].data.shape == (1, 1, 4, 4)
    rgb = arrays[0].astype(np.int64)
    gray = ((rgb[..., 0] * 9797 + rgb[..., 1] * 19234 + rgb[..., 2] * 3737) >> 15).astype(np.uint8)
    resized = resize_linear(gray[..., None], 9, 8)[..., 0]
    np.testing.assert_array_equal(net.blobs["data"].data[0, 0], resized[2:6, 2:6])  # centre crop in TEST
    net.close()


def test_shuffle_is_seeded_and_reshuffles_each_pass(images):
    tmp_path, _ = images

    def labels(seed):
        net = tinycaffe.Net(net_text(tmp_path, "batch_size: 5 shuffle: true"), phase="train", seed=seed)
        seen = []
        for _ in range(3):
            net.forward()
            seen.append([int(v) for v in net.blobs["label"].data])
        net.close()
        return seen

    first = labels(1)
    assert first == labels(1)  # the net's seed fixes the order
    assert all(sorted(p) == [10, 11, 12, 13, 14] for p in first)  # each pass sees every image once
    assert len({tuple(p) for p in first}) > 1 or first[0] != [10, 11, 12, 13, 14]


def test_rand_skip_starts_inside_the_list(images):
    tmp_path, _ = images
    starts = set()
    for seed in range(8):
        net = tinycaffe.Net(net_text(tmp_path, "batch_size: 1 rand_skip: 5"), phase="train", seed=seed)
        net.forward()
        starts.add(int(net.blobs["label"].data[0]))
        net.close()
    assert starts <= {10, 11, 12, 13, 14} and len(starts) > 1


def test_test_phase_refuses_a_batch_that_wraps_and_train_wraps(images):
    tmp_path, _ = images
    net = tinycaffe.Net(net_text(tmp_path, "batch_size: 2"))
    net.forward()
    net.forward()
    with pytest.raises(DataError, match=r"batch 2 would run past the end of the 5 images"):
        net.forward()
    net.close()
    net = tinycaffe.Net(net_text(tmp_path, "batch_size: 2"), phase="train")
    seen = []
    for _ in range(3):
        net.forward()
        seen += [int(v) for v in net.blobs["label"].data]
    assert seen == [10, 11, 12, 13, 14, 10]
    net.close()


def test_missing_image_and_bad_label_name_the_list_line(images):
    tmp_path, _ = images
    (tmp_path / "list.txt").write_text("im 0.png 1\nnope.png 2\n")
    net = tinycaffe.Net(net_text(tmp_path, "batch_size: 2"))
    with pytest.raises(DataError, match=r"layer 'd': .*list\.txt line 2: .*nope\.png: cannot read image"):
        net.forward()
    net.close()
    (tmp_path / "list.txt").write_text("im 0.png 1\nim 1.png one\n")
    with pytest.raises(DataError, match=r"layer 'd': .*list\.txt line 2: label 'one' is not an integer"):
        tinycaffe.Net(net_text(tmp_path, "batch_size: 2"))
    (tmp_path / "list.txt").write_text("im0.png\n")
    with pytest.raises(DataError, match=r"list\.txt line 1: expected 'path label'"):
        tinycaffe.Net(net_text(tmp_path, "batch_size: 2"))


def test_mixed_sizes_need_new_height_and_width(images):
    tmp_path, _ = images
    Image.fromarray(np.zeros((7, 5, 3), np.uint8)).save(tmp_path / "imgs" / "im 1.png")
    net = tinycaffe.Net(net_text(tmp_path, "batch_size: 2"))
    with pytest.raises(DataError, match=r"line 2: .* is 7x5 .* first image is 6x5 .* set new_height"):
        net.forward()
    net.close()
    net = tinycaffe.Net(net_text(tmp_path, "batch_size: 2 new_height: 6 new_width: 5"))
    net.forward()
    net.close()


def test_new_height_without_new_width_is_refused(images):
    tmp_path, _ = images
    with pytest.raises(NetError, match="new_height and new_width together"):
        tinycaffe.Net(net_text(tmp_path, "batch_size: 1 new_height: 4"))


def test_let_data_wrap_lets_a_test_net_wrap(images):
    tmp_path, _ = images
    net = tinycaffe.Net(net_text(tmp_path, "batch_size: 2"))
    net.let_data_wrap()  # as `tinycaffe time` and the solver's test passes do
    for _ in range(3):
        net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data, [14, 10])
    net.close()


@pytest.mark.parametrize("flags", [[], ["-encoded"]])
def test_convert_imageset_then_data_layer_equals_image_data_layer(images, flags):
    """The two ways into a net (a converted database, or the images themselves) give the same blobs."""
    import contextlib
    import io

    from tinycaffe.cli import main

    tmp_path, _ = images
    db = tmp_path / f"db{len(flags)}"
    resize = [] if flags else ["--resize_height=7", "--resize_width=9"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["convert-imageset", *flags, *resize, f"{tmp_path}/imgs/", str(tmp_path / "list.txt"),
                     str(db)]) == 0
    size = "" if flags else "new_height: 7 new_width: 9"
    direct = tinycaffe.Net(net_text(tmp_path, f"batch_size: 5 {size}", "scale: 0.25"))
    via_db = tinycaffe.Net(f"""
    layer {{ name: "d" type: "Data" top: "data" top: "label" transform_param {{ scale: 0.25 }}
             data_param {{ source: "{db}" batch_size: 5 backend: LMDB }} }}""")
    direct.forward()
    via_db.forward()
    np.testing.assert_array_equal(via_db.blobs["data"].data, direct.blobs["data"].data)
    np.testing.assert_array_equal(via_db.blobs["label"].data, direct.blobs["label"].data)
    direct.close()
    via_db.close()
