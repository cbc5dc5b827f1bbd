"""ipx.fingerprint.threads: one pool per name and process, a forked child's own."""

from __future__ import annotations

import multiprocessing
import threading

from ipx.fingerprint.threads import kept_pool


def test_a_pool_is_made_once_per_name_and_keeps_its_threads() -> None:
    first = kept_pool("ipx-test-kept", 2)
    names = {first.submit(lambda: threading.current_thread().name).result() for _ in range(20)}
    assert kept_pool("ipx-test-kept", 2) is first and kept_pool("ipx-test-other", 2) is not first
    assert names and all(name.startswith("ipx-test-kept") for name in names)


def answer_in_child(inherited_id: int, answers: multiprocessing.Queue) -> None:
    pool = kept_pool("ipx-test-fork", 1)
    answers.put((id(pool) != inherited_id, pool.submit(lambda: 6 * 7).result(timeout=20)))


def test_a_forked_child_makes_its_own_pool_instead_of_waiting_on_its_parents_threads() -> None:
    """The parent's pool in the child has a thread object but no thread: a task given to it would never run."""
    parent = kept_pool("ipx-test-fork", 1)
    assert parent.submit(lambda: 1).result() == 1  # the parent's pool has started its thread
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    child = context.Process(target=answer_in_child, args=(id(parent), answers))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert answers.get(timeout=5) == (True, 42)
