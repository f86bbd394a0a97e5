"""What the model reasoned for each query, kept so that the vector's reasoning can be shown and reused."""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable


class Trace:
    """One query's reasoning: its token ids and the token that ended it (``None``: the budget ran out).

    The ids are held as packed 32-bit integers (4 bytes each instead of a Python int's 36), since a memory of
    100,000 traces is mostly their ids.
    """

    __slots__ = ("_ids", "stop_token_id")

    def __init__(self, token_ids: Iterable[int], stop_token_id: int | None) -> None:
        self._ids = array("i", token_ids).tobytes()
        self.stop_token_id = stop_token_id

    @property
    def token_ids(self) -> tuple[int, ...]:
        ids = array("i")
        ids.frombytes(self._ids)
        return tuple(ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trace) and (self._ids, self.stop_token_id) == (other._ids, other.stop_token_id)

    def __hash__(self) -> int:
        return hash((self._ids, self.stop_token_id))

    def __repr__(self) -> str:
        return f"Trace(token_ids={self.token_ids}, stop_token_id={self.stop_token_id})"


class ReasoningMemory:
    """A bounded, thread-safe map from a query's key (a digest of its prompt) to its :class:`Trace`.

    Entries are dropped least recently used first once ``max_entries`` are held, so a server or a large
    benchmark does not grow without bound. ``stamp`` identifies the weights the traces were made with:
    :meth:`check_stamp` empties the memory when it changes, so a trace never outlives its weights.

    Args:
        max_entries: Most traces held; 0 keeps none.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, Trace] = OrderedDict()
        self._stamp: tuple = ()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        # A multi-process pool pickles the model: the copy starts with its own lock.
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def check_stamp(self, stamp: tuple) -> None:
        """Empties the memory if ``stamp`` differs from the one it was filled under."""
        with self._lock:
            if stamp != self._stamp:
                self._entries.clear()
                self._stamp = stamp

    def get(self, key: bytes) -> Trace | None:
        with self._lock:
            trace = self._entries.get(key)
            if trace is not None:
                self._entries.move_to_end(key)
            return trace

    def put(self, key: bytes, trace: Trace) -> None:
        with self._lock:
            if self.max_entries == 0:
                return
            self._entries[key] = trace
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: bytes) -> bool:
        with self._lock:
            return key in self._entries
