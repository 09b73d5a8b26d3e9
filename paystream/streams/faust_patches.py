"""A correction to faust-streaming's offset bookkeeping, applied when the Faust app is built.

When a worker starts (or a rebalance ends), Faust resumes the stream partitions *before* it
seeks them to their committed offsets. Records fetched in between are processed, then the seek
makes the next fetch jump ahead, and Faust records the skipped-over offsets as a "gap". On
commit it adds every gap offset to its list of acknowledged offsets, although those offsets
were processed and acknowledged already. The duplicates break its scan for consecutive
offsets, so the committed offset of that partition then advances by one per commit interval:
a restart replays everything since, and consumer lag grows without bound.

The correction drops already-acknowledged offsets from the gap before Faust merges it, so the
merge adds only offsets that were never seen (Faust's intent for real gaps, e.g. compaction).
It changes nothing when there is no gap. ``tests/e2e/test_worker_commits_e2e.py`` reproduces
the stall without it.
"""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer

_PATCHED = "_paystream_gap_correction"


def _drop_acked_offsets_from_gap(consumer: Any, tp: Any) -> None:
    gap = consumer._gap.get(tp)
    acked = consumer._acked_index.get(tp)
    if not gap or not acked:
        return
    for offset in sorted(acked):
        if gap.overlaps(offset):
            gap.chop(offset, offset + 1)


def correct_gap_bookkeeping() -> None:
    """Install the correction on Faust's consumer class (idempotent)."""
    if getattr(Consumer, _PATCHED, False):
        return
    original = Consumer._new_offset

    def _new_offset(self: Any, tp: Any) -> int | None:
        _drop_acked_offsets_from_gap(self, tp)
        result: int | None = original(self, tp)
        return result

    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    setattr(Consumer, _PATCHED, True)
