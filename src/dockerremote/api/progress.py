"""dockerd's progress bar text, byte sizes (pkg/jsonmessage, go-units) and update cadence."""

from __future__ import annotations

import time
from typing import Callable

_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]


def human_size(n: float) -> str:
    i = 0
    while n >= 1000 and i < len(_UNITS) - 1:
        n /= 1000.0
        i += 1
    return f"{_go_g4(n)}{_UNITS[i]}"


def _go_g4(x: float) -> str:
    s = f"{x:.4g}"
    if "e" in s:  # Go's %.4g switches to exponent form at the same place; keep Go's spelling
        mant, exp = s.split("e")
        s = f"{mant}e{exp[0]}{int(exp[1:]):02d}"
    return s


def bar(current: int, total: int) -> str:
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    percent = int(current * 100 / total)
    width = min(50, percent // 2)
    text = "[" + "=" * width + ">" + " " * (50 - width) + "] "
    if current > total:  # a wonky total is not shown, as dockerd does
        return text + f"{human_size(current):>8}"
    return text + f"{human_size(current):>8}/{human_size(total)}"


def progress_message(status: str, current: int, total: int, id_: str | None = None) -> dict:
    # JSONProgress fields are omitempty: a zero current or total is left out (-1 is kept)
    detail = {k: v for k, v in (("current", current), ("total", total)) if v}
    msg: dict = {"status": status, "progressDetail": detail}
    text = bar(current, total)
    if text:
        msg["progress"] = text
    if id_ is not None:
        msg["id"] = id_
    return msg


class Throttle:
    """pkg/progress.Reader's cadence: a line when more than min(512 KiB, 1% of total) new bytes
    arrived, at most one per 100 ms (a token bucket of one), always when current == total;
    finish() adds the last state if it was not written yet."""

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self._every = 512 * 1024
        if total > 0:
            self._every = min(self._every, int(0.01 * total))
        self._clock = clock
        self._last_update = 0
        self._last_sent = -1
        self._allowed_at: float | None = None

    def _allow(self) -> bool:
        now = self._clock()
        if self._allowed_at is not None and now - self._allowed_at < 0.1:
            return False
        self._allowed_at = now
        return True

    def update(self, current: int) -> bool:
        if current - self._last_update <= self._every:
            return False
        self._last_update = current
        if current == self.total or self._allow():
            self._last_sent = current
            return True
        return False

    def finish(self, current: int) -> bool:
        if current == self._last_sent:
            return False
        self._last_sent = current
        return True
