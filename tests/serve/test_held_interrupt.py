"""HeldInterrupt: Ctrl-C waits for the end of a direct write in the main thread (serve/held_interrupt.py)."""
from __future__ import annotations

import signal
import threading

import pytest

from tinycaffe.serve.held_interrupt import HeldInterrupt


def test_a_sigint_inside_is_delivered_at_the_end_of_the_block():
    before = signal.getsignal(signal.SIGINT)
    done = []
    with pytest.raises(KeyboardInterrupt):
        with HeldInterrupt():
            signal.raise_signal(signal.SIGINT)
            done.append("the rest of the block ran")  # would not run if the interrupt were raised here
    assert done == ["the rest of the block ran"]
    assert signal.getsignal(signal.SIGINT) is before


def test_without_a_signal_nothing_is_raised_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGINT)
    with HeldInterrupt():
        assert signal.getsignal(signal.SIGINT) is not before  # held while inside
    assert signal.getsignal(signal.SIGINT) is before


def test_the_previous_handler_gets_the_signal():
    got = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        with HeldInterrupt():
            signal.raise_signal(signal.SIGINT)
            assert got == []
        assert got == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with HeldInterrupt():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_the_main_thread_it_changes_nothing():
    seen = []

    def run():
        with HeldInterrupt():
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    t = threading.Thread(target=run)
    t.start()
    t.join(10)
    assert seen == [before]
