"""Decision ids come from a buffered CSPRNG batch: every id is handed out once, in one
process and across a fork (a preloaded app forked into workers must not repeat its parent's
next ids: a repeated id would let one worker's outcome land on another's challenge)."""

from __future__ import annotations

import os
import re
import threading

import pytest

from riskengine.core import decision_ids
from riskengine.core.decision_ids import BATCH, new_decision_id


def test_ids_are_16_hex_and_unique_across_many_batches() -> None:
    ids = [new_decision_id() for _ in range(20 * BATCH)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_threads_never_get_the_same_id() -> None:
    got: list[list[str]] = [[] for _ in range(4)]

    def draw(out: list[str]) -> None:
        for _ in range(3 * BATCH):
            out.append(new_decision_id())

    threads = [threading.Thread(target=draw, args=(out,)) for out in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for out in got for i in out]
    assert len(set(every)) == len(every) == 12 * BATCH


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_the_parents_buffered_ids() -> None:
    new_decision_id()  # the buffer now holds BATCH - 1 unused ids
    assert decision_ids._ids, "the test needs a non-empty buffer at fork time"
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave without running pytest's teardown
        try:
            os.close(read_fd)
            os.write(write_fd, ",".join(new_decision_id() for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        child = set(fh.read().decode().split(","))
    os.waitpid(pid, 0)
    parent = {new_decision_id() for _ in range(8)}
    assert len(child) == 8
    assert not child & parent
