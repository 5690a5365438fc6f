"""nginx's generic directive handlers (the ngx_conf_set_*_slot family).

A handler is called as ``handler(an, st, lv, d)``: the analyzer, the statement, the
level being filled and the directive's row.  It stores into ``lv.values[d.field]`` and
raises :class:`~angie_mail.conf.registry.Fail` with nginx's message on error.
"""

from __future__ import annotations

from functools import lru_cache

from .registry import Fail
from .values import atoi, cstr, parse_flag, parse_size, parse_time


def dup(d) -> Fail:
    return Fail(f'"{d.name}" directive is duplicate')


def arg(st, i: int = 1) -> str:
    return st.words[i].value


def flag_slot(an, st, lv, d):
    if d.field in lv.values:
        raise dup(d)
    v = parse_flag(arg(st))
    if v is None:
        raise Fail(f'invalid value "{cstr(arg(st))}" in "{d.name}" directive, '
                   f'it must be "on" or "off"')
    lv.values[d.field] = v


def str_slot(an, st, lv, d):
    if d.field in lv.values:
        raise dup(d)
    lv.values[d.field] = arg(st)


def runtime_path_slot(an, st, lv, d):
    """A file the server writes (pid...), made absolute against the prefix
    (ngx_conf_full_name(.., 0)): with ``-p /srv/mail/`` and the configuration in
    /srv/mail/conf/, ``pid logs/mail.pid`` is /srv/mail/logs/mail.pid."""
    if d.field in lv.values:
        raise dup(d)
    lv.values[d.field] = an.full_name(arg(st))


def path_slot(an, st, lv, d):
    """A file path, made absolute against the conf prefix (ngx_conf_full_name(.., 1))."""
    if d.field in lv.values:
        raise dup(d)
    lv.values[d.field] = an.full_name(arg(st), conf_prefix=True)


def value_slot(parse, message: str):
    """A scalar parsed by ``parse`` (None: invalid); ``message`` may use {name} and
    {value}.  nginx checks "is duplicate" before parsing."""
    def handler(an, st, lv, d):
        if d.field in lv.values:
            raise dup(d)
        v = parse(arg(st))
        if v is None:
            raise Fail(message.format(name=d.name, value=arg(st)))
        lv.values[d.field] = v
    return handler


num_slot = value_slot(atoi, '"{name}" directive invalid number')
size_slot = value_slot(parse_size, '"{name}" directive invalid value')


# the same few times recur server after server
@lru_cache(maxsize=1024)
def _msec(v: str) -> int | None:
    return parse_time(v, False)


@lru_cache(maxsize=1024)
def _sec(v: str) -> int | None:
    return parse_time(v, True)


msec_slot = value_slot(_msec, '"{name}" directive invalid value')
sec_slot = value_slot(_sec, '"{name}" directive invalid value')


def enum_slot(words):
    """Case-insensitive choice among ``words`` (stored lower-case)."""
    allowed = {w.lower(): w for w in words}

    def handler(an, st, lv, d):
        if d.field in lv.values:
            raise dup(d)
        v = cstr(arg(st)).lower()
        if v not in allowed:
            raise Fail(f'invalid value "{cstr(arg(st))}"')
        lv.values[d.field] = allowed[v]
    return handler


def bitmask_slot(words_for_dialect):
    """Every argument one of the allowed words (case-insensitive); a repeat is a
    warning; several lines in one block OR together.  ``words_for_dialect(dialect)``
    gives the allowed canonical words."""
    cache = {}
    # (dialect, words) -> the set of a block's first line that neither repeats a
    # word nor fails: configurations repeat the same few lines server after server
    first_lines = {}

    def handler(an, st, lv, d):
        cur = lv.values.get(d.field)
        if cur is None:
            key = (an.dialect, tuple([w.value for w in st.words[1:]]))
            done = first_lines.get(key)
            if done is not None:
                lv.values[d.field] = done
                return
        allowed = cache.get(an.dialect)
        if allowed is None:
            allowed = cache[an.dialect] = {w.lower(): w for w in words_for_dialect(an.dialect)}
        clean = cur is None
        cur = set(cur) if cur is not None else set()
        for w in st.words[1:]:
            v = cstr(w.value)
            canon = allowed.get(v.lower())
            if canon is None:
                raise Fail(f'invalid value "{v}"')
            if canon in cur:
                an.warn(f'duplicate value "{v}"', st)
                clean = False
            cur.add(canon)
        lv.values[d.field] = done = frozenset(cur)
        if clean and len(first_lines) < 1024:
            first_lines[key] = done
    return handler


def str_array_slot(an, st, lv, d):
    """One value appended to the level's list (ngx_conf_set_str_array_slot)."""
    lv.values.setdefault(d.field, []).append(arg(st))


def path_array_slot(an, st, lv, d):
    lv.values.setdefault(d.field, []).append(an.full_name(arg(st), conf_prefix=True))


def keyval_slot(an, st, lv, d):
    lv.values.setdefault(d.field, []).append((arg(st, 1), arg(st, 2)))


def capabilities(an, st, lv, d):
    """Every argument appended (ngx_mail_capabilities)."""
    lv.values.setdefault(d.field, []).extend(w.value for w in st.words[1:])


def accept(an, st, lv, d):
    """Known and accepted; the value has no effect here."""
    if d.field:
        lv.values.setdefault(d.field, []).append(tuple(w.value for w in st.words[1:]))
