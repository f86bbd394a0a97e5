"""Memory held by the reasoning memory at its default bound (100,000 queries), beside the layout it replaced.

    python research/reasoning_memory_size.py

Each entry is a query of the shipped reasoning prompt (its chat template is ~75 tokens) with a 64-token trace, the
ids fresh Python ints as ``Tensor.tolist()`` gives them. "Token-id keys" is the earlier layout: the decoding settings
and every prompt id as the key, the trace as a tuple of ints. Measured with tracemalloc.
"""

from __future__ import annotations

import argparse
import random
import tracemalloc

from st_search_r3.reasoning import memory_key
from st_search_r3.reasoning_memory import ReasoningMemory, Trace

ENTRIES, PROMPT_TOKENS, TRACE_TOKENS = 100_000, 90, 64


def held_bytes(key_of, trace_of) -> int:
    generator = random.Random(0)
    tracemalloc.start()
    memory = ReasoningMemory(ENTRIES)
    for _ in range(ENTRIES):
        prompt = [generator.randrange(49152) for _ in range(PROMPT_TOKENS)]
        memory.put(key_of(prompt), trace_of([generator.randrange(49152) for _ in range(TRACE_TOKENS)]))
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held


def main() -> None:
    settings = (64, 1.0, 0)
    layouts = {
        "token-id keys, tuple traces (before)": held_bytes(lambda ids: (*settings, *ids), lambda ids: tuple(ids)),
        "digest keys, packed traces": held_bytes(lambda ids: memory_key(settings, ids), lambda ids: Trace(ids, None)),
    }
    print(f"{ENTRIES:,} entries, {PROMPT_TOKENS}-token prompts, {TRACE_TOKENS}-token traces:")
    for name, held in layouts.items():
        print(f"  {name}: {held / 2**20:.0f} MiB ({held / ENTRIES:.0f} B per entry)")


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    main()
