"""Shared memory zones as one namespace, as nginx's ngx_shared_memory_add keeps them:
every module's zones (mail's ssl_session_cache, angie-mail's auth_throttle_zone and
limit_conn_zone, and the zones http{} and stream{} directives declare) share names."""

from __future__ import annotations


def declare_zone(an, name: str, size: int, tag: str):
    """Record zone ``name`` of ``size`` bytes for the use ``tag``: None, or nginx's
    message for a name another use took or declared with another size."""
    tags = an.__dict__.setdefault("shm_tags", {})
    old = an.shm_zones.get(name)
    if old is not None:
        if tags.get(name) != tag:
            return (f'the shared memory zone "{name}" is already declared for a '
                    f'different use')
        if old != size:
            return (f'the size {size} of shared memory zone "{name}" conflicts with '
                    f'already declared size {old}')
    an.shm_zones[name] = size
    tags[name] = tag
    return None
