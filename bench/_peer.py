"""The speed peer, imagehash.phash, and the allocator setting it is timed under (shared by the speed benchmarks)."""

from __future__ import annotations

import ctypes
import ctypes.util
import io

import imagehash
from PIL import Image

# glibc's mallopt parameters (malloc.h) and values: keep up to 1 GiB of freed memory at the heap's top, and serve
# allocations up to 32 MiB (glibc's ceiling for this setting on 64-bit) from the heap instead of fresh mappings.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEPT_FREE_BYTES = 1 << 30
HEAP_ALLOCATIONS_UP_TO = 32 << 20


def phash_of(data: bytes) -> imagehash.ImageHash:
    """imagehash.phash as its documentation calls it: open the file and hash it (a full-size decode)."""
    return imagehash.phash(Image.open(io.BytesIO(data)))


def keep_freed_memory() -> bool:
    """Have glibc keep freed memory for reuse rather than hand it back to the OS; False where it cannot (not glibc).

    imagehash.phash of a 12-megapixel JPEG decodes 36 MB of RGB and a 12 MB grey copy. With glibc's defaults the
    freed blocks at the heap's top go back to the OS and the next call maps and zeroes them again: 14,600 page
    faults, 110 ms a call instead of 78 (2026-12-04). Whether a run paid that depended on what the process had
    allocated before (one verify_speed run timed phash at 108 ms, the next at 77). IPX's fingerprint decodes at an
    eighth of the size and takes the same time either way, so timing the peer at its best keeps the ratios stable
    and on the side that flatters IPX least.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, KEPT_FREE_BYTES)) and bool(mallopt(M_MMAP_THRESHOLD, HEAP_ALLOCATIONS_UP_TO))
