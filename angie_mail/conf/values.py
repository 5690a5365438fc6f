"""nginx's value parsers (ngx_atoi, ngx_parse_size, ngx_parse_time, flags), exactly.

Each returns the parsed value or None when nginx would fail.
"""

from __future__ import annotations

MAX_INT = (1 << 63) - 1         # NGX_MAX_INT_T_VALUE / NGX_MAX_SIZE_T_VALUE on 64-bit
_DIGITS = frozenset("0123456789")


def atoi(s: str) -> int | None:
    """ngx_atoi: one or more decimal digits, no sign, no overflow."""
    if not s or not s.isascii() or not s.isdigit():
        return None
    n = int(s)
    return n if n <= MAX_INT else None


def parse_size(s: str) -> int | None:
    """ngx_parse_size: digits with an optional k/K or m/M suffix (no g)."""
    if not s:
        return None
    unit = s[-1]
    if unit in "kK":
        scale, body = 1024, s[:-1]
    elif unit in "mM":
        scale, body = 1024 * 1024, s[:-1]
    else:
        scale, body = 1, s
    n = atoi(body)
    if n is None or n > MAX_INT // scale:
        return None
    return n * scale


# (unit, step, seconds) ; steps must strictly decrease through the value
_STEP_START, _STEP_YEAR, _STEP_MONTH, _STEP_WEEK, _STEP_DAY, _STEP_HOUR, \
    _STEP_MIN, _STEP_SEC, _STEP_MSEC, _STEP_LAST = range(10)


def parse_time(s: str, is_sec: bool) -> int | None:
    """ngx_parse_time: milliseconds (``is_sec=False``) or seconds (``is_sec=True``).

    A sequence of ``<number><unit>`` items with units in decreasing order (y and M only
    for seconds, ms only for milliseconds), optionally separated by spaces; a bare
    number means seconds."""
    valid = False
    value = 0
    total = 0
    step = _STEP_START if is_sec else _STEP_MONTH
    cutoff, cutlim = MAX_INT // 10, MAX_INT % 10
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c in _DIGITS:
            d = ord(c) - 48
            if value >= cutoff and (value > cutoff or d > cutlim):
                return None
            value = value * 10 + d
            valid = True
            i += 1
            continue
        i += 1
        if c == "y":
            if step > _STEP_START:
                return None
            step, scale = _STEP_YEAR, 60 * 60 * 24 * 365
        elif c == "M":
            if step >= _STEP_MONTH:
                return None
            step, scale = _STEP_MONTH, 60 * 60 * 24 * 30
        elif c == "w":
            if step >= _STEP_WEEK:
                return None
            step, scale = _STEP_WEEK, 60 * 60 * 24 * 7
        elif c == "d":
            if step >= _STEP_DAY:
                return None
            step, scale = _STEP_DAY, 60 * 60 * 24
        elif c == "h":
            if step >= _STEP_HOUR:
                return None
            step, scale = _STEP_HOUR, 60 * 60
        elif c == "m":
            if i < n and s[i] == "s":
                if is_sec or step >= _STEP_MSEC:
                    return None
                i += 1
                step, scale = _STEP_MSEC, 1
            else:
                if step >= _STEP_MIN:
                    return None
                step, scale = _STEP_MIN, 60
        elif c == "s":
            if step >= _STEP_SEC:
                return None
            step, scale = _STEP_SEC, 1
        elif c == " ":
            if step >= _STEP_SEC:
                return None
            step, scale = _STEP_LAST, 1
        else:
            return None
        max_ = MAX_INT // scale
        if step != _STEP_MSEC and not is_sec:
            scale *= 1000
            max_ //= 1000
        if value > max_:
            return None
        value *= scale
        if total > MAX_INT - value:
            return None
        total += value
        value = 0
        while i < n and s[i] == " ":
            i += 1
    if not valid:
        return None
    if not is_sec:
        if value > MAX_INT // 1000:
            return None
        value *= 1000
    if total > MAX_INT - value:
        return None
    return total + value


def cstr(s: str) -> str:
    """The value as nginx's C-string functions see it (up to the first NUL byte)."""
    i = s.find("\0")
    return s if i < 0 else s[:i]


def parse_flag(s: str) -> bool | None:
    """on/off, case-insensitive (ngx_strcasecmp on the C string)."""
    v = cstr(s).lower()
    if v == "on":
        return True
    if v == "off":
        return False
    return None


def format_msec(ms: int) -> str:
    """A millisecond value in the shortest nginx time syntax (for dumps and docs)."""
    if ms == 0:
        return "0s"
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
