"""Prototxt reading: the whole BVLC corpus, the study's snippets, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tinycaffe.errors import FormatError
from tinycaffe.proto import caffe_pb2
from tinycaffe.proto.prototxt import (
    parse_message,
    parse_net,
    read_net,
    read_solver,
    to_text,
    write_prototxt,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CORPUS = SHARED / "data" / "bvlc-prototxt"
CORPUS_FILES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.prototxt")) if CORPUS.is_dir() else []


@pytest.fixture
def proto_shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found: {SHARED}")
    return SHARED


@pytest.mark.parametrize("rel", CORPUS_FILES or ["<corpus missing>"])
def test_bvlc_corpus_parses(rel: str, proto_shared: Path) -> None:
    path = CORPUS / rel
    if not path.is_file():
        pytest.skip(f"../shared not found: {path}")
    if "solver" in path.name:
        solver = read_solver(path)
        assert solver.net or solver.train_net or solver.HasField("net_param") or solver.HasField("train_net_param")
    else:
        net = read_net(path)
        assert net.layer or net.layers
        # What we print we can read back, unchanged.
        assert parse_net(to_text(net)) == net


def test_corpus_is_complete(proto_shared: Path) -> None:
    assert len(CORPUS_FILES) >= 50


def _paper_snippets(shared: Path) -> list[str]:
    text = (shared / "paper.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if "sink_param" in b or "source_param" in b]


def test_paper_snippets_parse(proto_shared: Path) -> None:
    snippets = _paper_snippets(proto_shared)
    assert len(snippets) == 2
    net = parse_net("\n".join(snippets), "paper.md")
    sink, source = net.layer
    assert (sink.type, list(sink.bottom)) == ("Sink", ["pool1"])
    assert sink.sink_param.host_name == "server.example.com"
    assert sink.sink_param.port == 3000
    assert sink.sink_param.window == 1
    assert sink.sink_param.wire_dtype == caffe_pb2.SinkParameter.FLOAT32
    assert sink.sink_param.connect_timeout == 30 and sink.sink_param.ack_timeout == 60
    assert (source.type, list(source.top)) == ("Source", ["pool1"])
    assert source.source_param.port == 3000
    assert source.source_param.bind == "127.0.0.1" and source.source_param.timeout == 0
    assert list(source.reshape_param.shape.dim) == [100, 32, 16, 16]


def test_study_fields_all_parse() -> None:
    net = parse_net(
        """
        layer { name: "s" type: "Sink" bottom: "x"
          sink_param { host_name: "h" port: 9 connect_timeout: 1.5 ack_timeout: 2
                       window: 4 wire_dtype: UINT8 bandwidth: "10Mbps"
                       return_top: "a" return_top: "b" } }
        layer { name: "r" type: "Source" top: "x"
          source_param { port: 9 bind: "0.0.0.0" timeout: 3 return_top: ["a", "b"] } }
        """
    )
    sink, source = net.layer[0].sink_param, net.layer[1].source_param
    assert sink.wire_dtype == caffe_pb2.SinkParameter.UINT8 and sink.window == 4
    assert sink.bandwidth == "10Mbps" and list(sink.return_top) == ["a", "b"]
    assert list(source.return_top) == ["a", "b"] and source.bind == "0.0.0.0"
    # The study's numbers never collide with Caffe's own fields.
    fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    assert fields["sink_param"].number == 10001 and fields["source_param"].number == 10002


def test_comments_lists_and_colons() -> None:
    net = parse_net(
        'name: "n"  # trailing comment\n'
        "# whole-line comment\n"
        'layer: { name: "in" type: "Input" top: "data"\n'
        "  input_param { shape: { dim: [1, 3] dim: 4 } } }\n"
    )
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 4]


def test_syntax_error_has_file_line_col(tmp_path: Path) -> None:
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  bogus_field: 3\n}\n')
    with pytest.raises(FormatError, match=rf"^{re.escape(str(path))}:4:3: .*bogus_field"):
        read_net(path)
    path.write_text('name: "x"\nlayer {\n  name: "a"\n')
    with pytest.raises(FormatError, match=rf"^{re.escape(str(path))}:\d+:\d+: "):
        read_net(path)


def test_bad_value_and_source_name() -> None:
    with pytest.raises(FormatError, match=r"^net.prototxt:1:\d+: "):
        parse_net('layer { name: "a" convolution_param { num_output: -3 } }', "net.prototxt")
    with pytest.raises(FormatError, match=r"^<string>:1:\d+: "):
        parse_net("layer { name: 1 }")


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.prototxt"
    with pytest.raises(FormatError, match="nope.prototxt"):
        read_net(missing)
    with pytest.raises(FormatError, match="nope.prototxt"):
        read_solver(missing)
    binary = tmp_path / "bin.prototxt"
    binary.write_bytes(b'name: "x"\nname\xff\n')
    with pytest.raises(FormatError, match=r"bin.prototxt:2:5: not UTF-8"):
        read_net(binary)


def test_write_and_parse_message(tmp_path: Path) -> None:
    solver = caffe_pb2.SolverParameter(base_lr=0.01, max_iter=10, type="Adam")
    solver.test_iter.append(5)
    path = tmp_path / "solver.prototxt"
    write_prototxt(solver, path)
    assert read_solver(path) == solver
    layer = parse_message('name: "c" type: "Convolution"', caffe_pb2.LayerParameter(), "x")
    assert layer.type == "Convolution"
    with pytest.raises(FormatError, match="cannot write"):
        write_prototxt(solver, tmp_path / "no" / "such" / "dir.prototxt")


def test_schema_defaults_match_caffe() -> None:
    # Spot checks of defaults that change results when wrong.
    assert caffe_pb2.PoolingParameter().stride == 1
    assert caffe_pb2.PoolingParameter().round_mode == caffe_pb2.PoolingParameter.CEIL
    assert caffe_pb2.LRNParameter().local_size == 5 and caffe_pb2.LRNParameter().k == 1.0
    assert abs(caffe_pb2.LRNParameter().beta - 0.75) < 1e-7
    assert caffe_pb2.ConvolutionParameter().group == 1 and caffe_pb2.ConvolutionParameter().bias_term
    assert caffe_pb2.NetState().phase == caffe_pb2.TEST
    assert caffe_pb2.ParamSpec().lr_mult == 1.0
    assert abs(caffe_pb2.BatchNormParameter().eps - 1e-5) < 1e-12
    assert caffe_pb2.SolverParameter().solver_mode == caffe_pb2.SolverParameter.GPU
    assert caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name["clip_param"].number == 148
    assert caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name["layer"].number == 100
