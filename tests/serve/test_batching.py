"""Dynamic batching across clients: one forward for several clients, each gets exactly its own rows."""
from __future__ import annotations

import numpy as np
import pytest

import tinycaffe
from tinycaffe.errors import NetError
from tinycaffe.serve import ServeOptions, Server
from tinycaffe.wire import SinkSession

from .helpers import ServerThread, batches, expected, hello, slow
from .test_server import run_clients


def test_batches_of_four_clients_share_one_forward_and_match_serving_alone():
    with ServerThread(keep_serving=True, max_batch=4, max_delay=slow(5)) as st:
        sessions = [SinkSession.connect("127.0.0.1", st.port, hello(), timeout=slow(10), connect_timeout=slow(10))
                    for _ in range(4)]
        xs = batches(4, seed=8)
        for s, x in zip(sessions, xs):
            s.send({"x": x})  # all four are waiting before the first forward may start
        for s, x in zip(sessions, xs):
            np.testing.assert_array_equal(s.result(slow(10)).blobs["prob"], expected(x))
            s.close(slow(10))
        assert (st.server.batcher.forwards, st.server.batcher.gathered) == (1, 4)


def test_many_clients_with_batching_each_get_their_own_answers_in_order():
    with ServerThread(keep_serving=True, max_clients=8, max_batch=8, max_delay=0.005) as st:
        results, errors = run_clients(st.port, 8, 6)
        assert not errors, errors
        for i, got in results.items():
            for x, y in zip(batches(6, seed=i), got):
                np.testing.assert_array_equal(y, expected(x))
        assert st.server.batcher.gathered == 48


def test_batching_is_refused_for_outputs_that_are_means_over_the_batch():
    net = tinycaffe.Net(
        'layer { name: "src" type: "Source" top: "x" top: "label" source_param { port: 0 }'
        ' input_param { shape { dim: [4, 8] } shape { dim: [4] } } }'
        'layer { name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "accuracy" }'
    )
    with pytest.raises(NetError, match="per-sample outputs: 'accuracy'"):
        Server(net, ServeOptions(max_batch=4))


def test_a_gathered_count_that_shrinks_and_grows_again_still_matches_serving_alone():
    """4 clients' batches in one forward, then 1, then 2: the Source's tops keep batch 16's
    buffer (stale rows beyond the count) and each client still gets exactly its own answers."""
    sizes = []  # rows in the last forward of each round
    with ServerThread(keep_serving=True, max_batch=4, max_delay=slow(1)) as st:
        net = st.server.net
        sessions = [SinkSession.connect("127.0.0.1", st.port, hello(), timeout=slow(10), connect_timeout=slow(10))
                    for _ in range(4)]
        xs = batches(7, seed=21)
        sent = 0
        for who in ([0, 1, 2, 3], [0], [1, 2]):
            mine = {}
            for k in who:
                sessions[k].send({"x": xs[sent]})
                mine[k] = xs[sent]
                sent += 1
            for k, x in mine.items():
                np.testing.assert_array_equal(sessions[k].result(slow(10)).blobs["prob"], expected(x))
            sizes.append(net.blobs["x"].shape[0])
        for s in sessions:
            s.close(slow(10))
        assert st.server.batcher.gathered == 7
        # The last forward ran on the larger buffer an earlier one left behind (not reallocated).
        assert net.blobs["x"].capacity > sizes[-1] * 8 and net.blobs["x"].capacity >= max(sizes) * 8, sizes
