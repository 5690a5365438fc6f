"""Differential tests: ``angie-mail --dialect nginx`` against the real ``nginx -t``.

Each case of oracle_cases.py is written to a file that a wrapper includes after nginx's
``load_module`` line (so both see the same file name and line numbers).  Both must give
the same verdict and the same first message, except that for TLS file errors only the
message kind (the text before ``": "``) is compared, since OpenSSL's detail varies.
"""

import os
import re

import pytest

import oracle
from angie_mail.conf.analyze import analyze
from angie_mail.conf.parse import conf_prefix_of, parse_file
from conf.oracle_cases import ALL, KNOWN_DIFFERENCES

pytestmark = pytest.mark.skipif(not oracle.available(),
                                reason="nginx with libnginx-mod-mail is installed by .ci/run")

_OPENSSL_DETAIL = re.compile(r'^((?:cannot load certificate(?: key)?|SSL_CTX_use_PrivateKey'
                             r'|BIO_new_file|PEM_read_bio_\w+)[^:]*):.*$')


def ours(conf: str):
    parsed = parse_file(conf)
    res = analyze(parsed, dialect="nginx", prefix=os.path.dirname(conf) + "/",
                  conf_prefix=conf_prefix_of(conf))
    first = res.first_error
    warns = [w.text() for w in res.warnings]
    return (1 if first else 0), (first.text() if first else None), warns


def norm(msg):
    if msg is None:
        return None
    m = _OPENSSL_DETAIL.match(msg)
    return m.group(1) if m else msg


def nginx(tmp_path, text):
    rc, lines = oracle.check_case(str(tmp_path), text)
    errors = [m for lvl, m in lines if lvl != "warn"]
    warns = [m for lvl, m in lines if lvl == "warn"]
    return (1 if rc else 0), (errors[0] if errors else None), warns


@pytest.mark.parametrize("text", ALL, ids=[f"case{i}" for i in range(len(ALL))])
def test_same_verdict_and_message_as_nginx(tmp_path, text):
    theirs = nginx(tmp_path, text)
    mine = ours(os.path.join(str(tmp_path), "wrap.conf"))
    assert (mine[0], norm(mine[1])) == (theirs[0], norm(theirs[1])), text
    assert mine[2] == theirs[2], text


@pytest.mark.parametrize("text", KNOWN_DIFFERENCES)
def test_known_differences_are_still_differences(tmp_path, text):
    """nginx rejects these inside http {}; angie-mail does not analyse http {}."""
    theirs = nginx(tmp_path, text)
    mine = ours(os.path.join(str(tmp_path), "wrap.conf"))
    assert theirs[0] == 1 and mine[0] == 0
