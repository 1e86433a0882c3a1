"""Read a Parquet file's footer (schema, row count), usually with one ranged read."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from resources.storage import ObjectStorage

_MAGIC = b"PAR1"
# the first read takes this much of the file's end: the footer of a predictions
# output (keys + a few columns) is a few KiB, so one request (one S3 round trip)
# usually gets trailer and footer together; a bigger footer costs a second read
TAIL_GUESS_BYTES = 64 * 1024


def read_footer(storage: ObjectStorage, key: str) -> pq.FileMetaData:
    """The footer of ``key``; raises ValueError naming the object if it is not Parquet."""
    tail = storage.read_tail(key, TAIL_GUESS_BYTES)
    if len(tail) < 8 or tail[-4:] != _MAGIC:
        raise ValueError(f"{storage.uri(key)} is not a Parquet file (no PAR1 trailer)")
    length = int.from_bytes(tail[-8:-4], "little")
    if length + 8 > len(tail):
        tail = storage.read_tail(key, length + 8)
    try:
        return pq.read_metadata(pa.BufferReader(_MAGIC + tail[-(length + 8):]))
    except pa.ArrowException as exc:
        raise ValueError(f"{storage.uri(key)} has an unreadable Parquet footer: {exc}") from exc
