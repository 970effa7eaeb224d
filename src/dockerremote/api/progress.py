"""dockerd's progress bar text and byte sizes (pkg/jsonmessage, go-units)."""

from __future__ import annotations

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
    msg: dict = {"status": status, "progressDetail": {"current": current, "total": total},
                 "progress": bar(current, total)}
    if id_ is not None:
        msg["id"] = id_
    return msg
