"""Read a Parquet file's footer (schema, row count) with two small ranged reads."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from resources.storage import ObjectStorage

_MAGIC = b"PAR1"


def read_footer(storage: ObjectStorage, key: str) -> pq.FileMetaData:
    """The footer of ``key``; raises ValueError naming the object if it is not Parquet."""
    trailer = storage.read_tail(key, 8)
    if len(trailer) < 8 or trailer[-4:] != _MAGIC:
        raise ValueError(f"{storage.uri(key)} is not a Parquet file (no PAR1 trailer)")
    length = int.from_bytes(trailer[:4], "little")
    tail = storage.read_tail(key, length + 8)
    try:
        return pq.read_metadata(pa.BufferReader(_MAGIC + tail))
    except pa.ArrowException as exc:
        raise ValueError(f"{storage.uri(key)} has an unreadable Parquet footer: {exc}") from exc
