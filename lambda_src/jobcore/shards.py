"""Cutting one input into shards: contiguous runs of aligned chunks that workers process in parallel.

The chunk rule (a part holds the lines whose newline falls in its aligned range) makes part contents
independent of who reads them, so a shard is just a run of chunks: shard i owns chunks
[i*n/s, (i+1)*n/s) of the input's n chunks. Its worker starts at the first line running into its range
(found by reading backwards from `start`), and stops at `end`, leaving the line that runs past it to the
next shard.
"""

from __future__ import annotations

from jobcore.model import ShardPosition


def chunk_count(size: int, chunk_bytes: int) -> int:
    """Aligned chunks of an input of `size` bytes (an empty input still has one, empty)."""
    return max(1, -(-size // chunk_bytes))


def plan(size: int, chunk_bytes: int, requested: int) -> tuple[ShardPosition, ...]:
    """The shards of an input: `requested` of them, but never more than it has chunks (a shard without a
    chunk would have nothing to do). Empty when that leaves one: the job is not sharded."""
    chunks = chunk_count(size, chunk_bytes)
    count = min(requested, chunks)
    if count <= 1:
        return ()
    shards = []
    for index in range(count):
        first, last = index * chunks // count, (index + 1) * chunks // count
        start, end = first * chunk_bytes, min(last * chunk_bytes, size)
        # Shard 0 starts at a line start by definition; the others find theirs.
        shards.append(ShardPosition(index=index, start=start, end=end, cursor=0 if index == 0 else None))
    return tuple(shards)


def map_items(positions: tuple[ShardPosition, ...]) -> list[dict[str, object]]:
    """The state machine's Map items for these shards: one worker a round for each shard not yet done."""
    return [{"shard": p.index, "done": p.done, "hand_over": False} for p in positions]
