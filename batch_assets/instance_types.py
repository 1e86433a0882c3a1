"""What an instance type's name tells: its vCPUs (for sizing jobs)."""

from __future__ import annotations

import re

_SIZE = re.compile(r"ml\.[a-z0-9-]+\.(?:(\d*)xlarge|(large|medium|small))$")


def vcpus(instance_type: str) -> int | None:
    """vCPUs of an ``ml.<family>.<size>`` type by AWS's naming (medium 1, large 2,
    xlarge 4, Nxlarge 4N); None for sizes the name does not tell (metal)."""
    match = _SIZE.match(instance_type)
    if not match:
        return None
    multiple, small = match.groups()
    if small:
        return {"large": 2, "medium": 1, "small": 1}[small]
    return 4 * int(multiple or 1)
