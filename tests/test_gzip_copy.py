"""The pure-Python crc32_combine (used where the zlib module lacks one) agrees with zlib."""

from __future__ import annotations

import random
import zlib

from dockerremote.transfer.gzip_copy import _crc32_combine


def test_crc32_combine_matches_zlib() -> None:
    rnd = random.Random(7)
    for _ in range(200):
        a = rnd.randbytes(rnd.randint(0, 2000))
        b = rnd.randbytes(rnd.choice([0, 1, rnd.randint(2, 70_000)]))
        assert _crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
