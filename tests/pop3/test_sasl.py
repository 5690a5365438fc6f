"""Unit tests of angie_mail/sasl.py against pop3.md §6 (base64 rules, PLAIN, LOGIN,
CRAM-MD5, EXTERNAL, XOAUTH2, OAUTHBEARER) and the §13 log texts."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from angie_mail import sasl
from angie_mail.sasl import SaslError

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(x):
    return base64.b64encode(x)


def spec_b64decode(data: bytes):
    """pop3.md §6 'Base64 decoding', written from the text (bit by bit)."""
    eq = data.find(b"=")
    body = data if eq < 0 else data[:eq]
    if any(c not in ALPHABET for c in body):
        return None
    if len(body) % 4 == 1:
        return None
    out = bytearray()
    for i in range(0, len(body), 4):
        group = [ALPHABET.index(c) for c in body[i:i + 4]]
        bits = 0
        for v in group:
            bits = (bits << 6) | v
        nbytes = {4: 3, 3: 2, 2: 1}[len(group)]
        bits >>= len(group) * 6 - nbytes * 8           # drop the unused low bits
        out += bits.to_bytes(nbytes, "big")
    return bytes(out)


# --------------------------------------------------------------------------------------
# base64
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("enc,dec", [
    (b"", b""),
    (b"=", b""), (b"==", b""), (b"====", b""),
    (b"YQ==", b"a"), (b"YQ=", b"a"), (b"YQ", b"a"),          # padding optional
    (b"YWI=", b"ab"), (b"YWI", b"ab"),
    (b"YWJj", b"abc"),
    (b"YWJjZA", b"abcd"),
    (b"YWJjZA==!!!*\x00", b"abcd"),                           # bytes after '=' ignored
    (b"YWJjZA=YWJj", b"abcd"),
    (b"YWJj=Y", b"abc"),
    (b"YR", b"a"), (b"YWJ", b"ab"),                           # unused low bits ignored
    (b"////", b"\xff\xff\xff"), (b"++++", b"\xfb\xef\xbe"),
    (b"AA", b"\x00"),
])
def test_b64decode_accepts(enc, dec):
    assert sasl.b64decode(enc) == dec


@pytest.mark.parametrize("enc", [
    b"Y", b"YWJjZ", b"YWJjZ=", b"YWJjZ==", b"YWJjZGVmZ",       # length 1 (mod 4)
    b"YQ!=", b"Y Q==", b"YQ\t", b"YQ-_", b"YQ\x00", b"YQ\xff", b"*", b"-", b".",
    b"YW\r\n", b"Y\nQ=",
])
def test_b64decode_rejects(enc):
    assert sasl.b64decode(enc) is None


def test_b64decode_url_safe_alphabet_rejected():
    assert sasl.b64decode(b"-_-_") is None


def test_b64encode_standard_with_padding():
    assert sasl.b64encode(b"Username:") == b"VXNlcm5hbWU6"
    assert sasl.b64encode(b"Password:") == b"UGFzc3dvcmQ6"
    assert sasl.b64encode(b"<1804289383.1700000000@mail.example.com>") == \
        b"PDE4MDQyODkzODMuMTcwMDAwMDAwMEBtYWlsLmV4YW1wbGUuY29tPg=="
    assert sasl.b64encode(b"a") == b"YQ=="
    assert sasl.b64encode(b"") == b""


@settings(max_examples=500)
@given(st.binary(max_size=100))
def test_b64decode_roundtrip_padded_and_unpadded(data):
    assert sasl.b64decode(b64(data)) == data
    assert sasl.b64decode(b64(data).rstrip(b"=")) == data


@settings(max_examples=1000)
@given(st.one_of(
    st.binary(max_size=40),
    st.text(alphabet=ALPHABET.decode() + "=", max_size=40).map(str.encode),
    st.tuples(st.text(alphabet=ALPHABET.decode(), max_size=30).map(str.encode),
              st.binary(max_size=10)).map(lambda t: t[0] + b"=" + t[1]),
))
def test_b64decode_matches_spec_model(data):
    assert sasl.b64decode(data) == spec_b64decode(data)


# --------------------------------------------------------------------------------------
# PLAIN
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload,expected", [
    (b"\0bob\0pw", (b"bob", b"pw")),
    (b"authz\0bob\0pw", (b"bob", b"pw")),                 # authzid ignored
    (b"\0\0", (b"", b"")),
    (b"\0bob\0", (b"bob", b"")),
    (b"\0\0pw", (b"", b"pw")),
    (b"\0bob\0p\0w", (b"bob", b"p\0w")),                 # password keeps further NULs
    (b"x\0 b o b \0 p w ", (b" b o b ", b" p w ")),
])
def test_plain_split(payload, expected):
    assert sasl.plain(b64(payload)) == expected


@pytest.mark.parametrize("payload", [b"", b"bob", b"bob\0", b"\0"])
def test_plain_nothing_after_first_nul_is_invalid_login(payload):
    with pytest.raises(SaslError) as e:
        sasl.plain(b64(payload))
    assert str(e.value) == "client sent invalid login in AUTH PLAIN command"


@pytest.mark.parametrize("payload", [b"\0bob", b"authz\0bob", b"\0b"])
def test_plain_no_second_nul_is_invalid_password(payload):
    with pytest.raises(SaslError) as e:
        sasl.plain(b64(payload))
    assert str(e.value) == "client sent invalid password in AUTH PLAIN command"


def test_plain_bad_base64():
    with pytest.raises(SaslError) as e:
        sasl.plain(b"*")
    assert str(e.value) == "client sent invalid base64 encoding in AUTH PLAIN command"


# --------------------------------------------------------------------------------------
# LOGIN
# --------------------------------------------------------------------------------------

def test_login_username_and_password_decode():
    assert sasl.login_username(b64(b"bob")) == b"bob"
    assert sasl.login_username(b"") == b""
    assert sasl.login_password(b64(b"p w")) == b"p w"
    assert sasl.login_password(b"=") == b""


@pytest.mark.parametrize("fn", [sasl.login_username, sasl.login_password])
def test_login_bad_base64(fn):
    with pytest.raises(SaslError) as e:
        fn(b"Y")
    assert str(e.value) == "client sent invalid base64 encoding in AUTH LOGIN command"


def test_star_cancellation_is_bad_base64():
    with pytest.raises(SaslError):
        sasl.login_username(b"*")


# --------------------------------------------------------------------------------------
# CRAM-MD5
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("resp,expected", [
    (b"bob b913a602c7eda7a495b4e6e7334d3890", (b"bob", b"b913a602c7eda7a495b4e6e7334d3890")),
    (b"bob " + b"Z" * 32, (b"bob", b"Z" * 32)),           # not checked for hex
    (b" " + b"0" * 32, (b"", b"0" * 32)),
    (b"a b " + b"0" * 30, (b"a", b"b " + b"0" * 30)),     # first space splits
])
def test_cram_md5_split(resp, expected):
    assert sasl.cram_md5(b64(resp)) == expected


@pytest.mark.parametrize("resp", [b"bob " + b"0" * 31, b"bob " + b"0" * 33, b"bob",
                                  b"0" * 32, b"", b"bob "])
def test_cram_md5_digest_must_be_32_bytes(resp):
    with pytest.raises(SaslError) as e:
        sasl.cram_md5(b64(resp))
    assert str(e.value) == "client sent invalid CRAM-MD5 hash in AUTH CRAM-MD5 command"


def test_cram_md5_bad_base64():
    with pytest.raises(SaslError) as e:
        sasl.cram_md5(b"?")
    assert str(e.value) == "client sent invalid base64 encoding in AUTH CRAM-MD5 command"


# --------------------------------------------------------------------------------------
# EXTERNAL
# --------------------------------------------------------------------------------------

def test_external_login():
    assert sasl.external(b64(b"bob@example.com")) == b"bob@example.com"
    assert sasl.external(b"") == b""


def test_external_bad_base64():
    with pytest.raises(SaslError) as e:
        sasl.external(b"a")
    assert str(e.value) == "client sent invalid base64 encoding in AUTH EXTERNAL command"


# --------------------------------------------------------------------------------------
# XOAUTH2
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload,expected", [
    (b"user=bob@example.com\x01auth=Bearer ya29.tok\x01\x01", (b"bob@example.com", b"ya29.tok")),
    (b"USER=bob\x01AUTH=BEARER t\x01\x01", (b"bob", b"t")),
    (b"uSeR=bob\x01aUtH=bEaReR t\x01\x01", (b"bob", b"t")),
    (b"user=bob\x01auth=Bearer a\x01b\x01\x01", (b"bob", b"a\x01b")),
])
def test_xoauth2_valid(payload, expected):
    assert sasl.xoauth2(b64(payload)) == expected


@pytest.mark.parametrize("payload", [
    b"usr=bob\x01auth=Bearer t\x01\x01", b"bob\x01auth=Bearer t\x01\x01",
    b"user=bob", b"", b" user=bob\x01auth=Bearer t\x01\x01",
])
def test_xoauth2_invalid_login(payload):
    with pytest.raises(SaslError) as e:
        sasl.xoauth2(b64(payload))
    assert str(e.value) == "client sent invalid login in AUTH XOAUTH2 command"


@pytest.mark.parametrize("payload", [
    b"user=bob\x01auth=Basic t\x01\x01", b"user=bob\x01auth=Bearert\x01\x01",
    b"user=bob\x01auth=Bearer\tt\x01\x01", b"user=bob\x01auth=Bearer t\x01",
    b"user=bob\x01auth=Bearer t", b"user=bob\x01auth=Bearer t\x01\x01 ",
    b"user=bob\x01", b"user=bob\x01auth=Bearer \x01",
])
def test_xoauth2_invalid_token(payload):
    with pytest.raises(SaslError) as e:
        sasl.xoauth2(b64(payload))
    assert str(e.value) == "client sent invalid token in AUTH XOAUTH2 command"


def test_xoauth2_bad_base64():
    with pytest.raises(SaslError) as e:
        sasl.xoauth2(b"*")
    assert str(e.value) == "client sent invalid base64 encoding in AUTH XOAUTH2 command"


# --------------------------------------------------------------------------------------
# OAUTHBEARER
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload,expected", [
    (b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
     b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01",
     (b"user@example.com", b"vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==")),
    (b"n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01", (b"a,b=c", b"t")),
    (b"n,a=a=2cb=3dc,\x01auth=Bearer t\x01\x01", (b"a,b=c", b"t")),
    (b"n,A=bob,\x01AUTH=BEARER t\x01\x01", (b"bob", b"t")),
    (b"y,a=bob,\x01auth=Bearer t\x01\x01", (b"bob", b"t")),
    (b"p=x,foo,a=bob,\x01auth=Bearer t\x01\x01", (b"bob", b"t")),
    (b"n,a=bob,\x01auth=Bearer t1\x01auth=Bearer t2\x01\x01", (b"bob", b"t1")),
    (b"n,a=bob,\x01auth=Bearer t\x01", (b"bob", b"t")),
    (b"n,a=bob,\x01host=x\x01auth=Bearer t\x01", (b"bob", b"t")),
])
def test_oauthbearer_valid(payload, expected):
    assert sasl.oauthbearer(b64(payload)) == expected


@pytest.mark.parametrize("payload", [
    b"n,a=bob\x01auth=Bearer t\x01\x01",            # a= not terminated by a comma
    b"a=bob,\x01auth=Bearer t\x01\x01",             # first field skipped
    b"n,,\x01auth=Bearer t\x01\x01",
    b"n,a=,\x01auth=Bearer t\x01\x01",
    b"n,\x01a=bob,\x01auth=Bearer t\x01\x01",       # scanning stops at \x01
    b"n,a=b=2Xob,\x01auth=Bearer t\x01\x01",        # invalid escape
    b"n,a=bob=,\x01auth=Bearer t\x01\x01",
    b"n,a=bob=3,\x01auth=Bearer t\x01\x01",
    b"n,a=b=41,\x01auth=Bearer t\x01\x01",
    b"",
])
def test_oauthbearer_invalid_login(payload):
    with pytest.raises(SaslError) as e:
        sasl.oauthbearer(b64(payload))
    assert str(e.value) == "client sent invalid login in AUTH OAUTHBEARER command"


@pytest.mark.parametrize("payload", [
    b"n,a=bob,\x01auth=Bearer \x01\x01",            # empty token
    b"n,a=bob,\x01auth=Bearer t",                   # not terminated by \x01
    b"n,a=bob,\x01auth=Basic t\x01\x01",
    b"n,a=bob,\x01auth=Bearert\x01\x01",
    b"n,a=bob,\x01host=x\x01\x01",
    b"n,a=bob,",                                    # no \x01 at all
])
def test_oauthbearer_invalid_token(payload):
    with pytest.raises(SaslError) as e:
        sasl.oauthbearer(b64(payload))
    assert str(e.value) == "client sent invalid token in AUTH OAUTHBEARER command"


def test_oauthbearer_bad_base64():
    with pytest.raises(SaslError) as e:
        sasl.oauthbearer(b"!")
    assert str(e.value) == "client sent invalid base64 encoding in AUTH OAUTHBEARER command"


# --------------------------------------------------------------------------------------
# robustness
# --------------------------------------------------------------------------------------

DECODERS = [sasl.plain, sasl.login_username, sasl.login_password, sasl.cram_md5,
            sasl.external, sasl.xoauth2, sasl.oauthbearer]


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=120), st.binary(max_size=90).map(b64)))
def test_decoders_only_raise_sasl_error(data):
    for fn in DECODERS:
        try:
            r = fn(data)
        except SaslError as e:
            assert str(e).startswith("client sent invalid ")
            assert str(e).endswith(" command")
        else:
            assert isinstance(r, (bytes, tuple))
