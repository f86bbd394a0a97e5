import threading

import pytest

from st_search_r3.reasoning_memory import ReasoningMemory, Trace


def test_least_recently_used_entries_go_first():
    memory = ReasoningMemory(max_entries=2)
    memory.put(("a",), Trace((1,), None))
    memory.put(("b",), Trace((2,), None))
    assert memory.get(("a",)) is not None  # "a" is now the most recent
    memory.put(("c",), Trace((3,), None))
    assert ("b",) not in memory and ("a",) in memory and ("c",) in memory


def test_a_new_stamp_empties_the_memory():
    memory = ReasoningMemory()
    memory.check_stamp((1,))
    memory.put(("a",), Trace((1,), 5))
    memory.check_stamp((1,))
    assert len(memory) == 1
    memory.check_stamp((2,))
    assert len(memory) == 0


def test_zero_size_keeps_nothing_and_negative_size_is_an_error():
    memory = ReasoningMemory(max_entries=0)
    memory.put(("a",), Trace((1,), None))
    assert len(memory) == 0
    with pytest.raises(ValueError):
        ReasoningMemory(max_entries=-1)


def test_concurrent_writers_never_exceed_the_bound():
    memory = ReasoningMemory(max_entries=50)

    def writer(offset):
        for i in range(2_000):
            memory.put((offset, i), Trace((i,), None))
            memory.get((offset, i - 1))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(memory) == 50


def test_a_pickled_copy_keeps_its_entries_and_gets_its_own_lock():
    import pickle

    memory = ReasoningMemory(max_entries=3)
    memory.put(("a",), Trace((1,), 2))
    copy = pickle.loads(pickle.dumps(memory))
    assert copy.get(("a",)) == Trace((1,), 2) and copy._lock is not memory._lock
