"""parse_url reads a plain "a.b.c.d:port" without its general steps: what it finds
must be what the general parser finds, for every text and every option."""

from hypothesis import given, settings
from hypothesis import strategies as st

from angie_mail.conf import url
from angie_mail.conf.url import Url, _parse_url, parse_url

numbers = st.one_of(
    st.integers(0, 999).map(str),
    st.integers(0, 300).map(lambda n: "0" + str(n)),
    st.integers(0, 99999).map(str),
    st.text(alphabet="0123456789\u0663 -x*", max_size=6),
)
separators = st.sampled_from([".", ".", ".", ":", ""])
tails = st.sampled_from(["", "", "", "/", "/auth", "?x", "-120", " ", ":", "\0"])


@st.composite
def plain(draw):
    """Four dot-separated numbers and a port, plain or not."""
    octet = st.integers(0, 255).map(str)
    octets = draw(st.lists(st.one_of(octet, octet, octet, numbers), min_size=4, max_size=4))
    port = draw(st.integers(1, 65535).map(str) | st.integers(0, 70000).map(str) | numbers)
    return ".".join(octets) + ":" + port


@st.composite
def anything(draw):
    octets = draw(st.lists(numbers, min_size=1, max_size=5))
    host = octets[0] + "".join(draw(separators) + o for o in octets[1:])
    port = draw(st.one_of(st.integers(0, 70000).map(str), numbers))
    return draw(st.sampled_from(["", "*", "unix:", "["])) + host + ":" + port + draw(tails)


canonical = st.builds("{}.{}.{}.{}:{}".format, *[st.integers(0, 255)] * 4,
                      st.integers(1, 65535))
addresses = canonical | plain() | anything() | st.builds(str.__add__, plain(), tails)


def _found(u: Url) -> dict:
    return {name: getattr(u, name) for name in Url.__slots__}


@settings(max_examples=2000)
@given(addresses, st.booleans(), st.booleans(), st.sampled_from([0, 53]),
       st.booleans(), st.booleans())
def test_plain_address_reads_as_the_general_parser_reads_it(
        text, listen, uri_part, default_port, no_resolve, port_ranges):
    saved, url.lookup = url.lookup, lambda host, port: None      # no DNS here
    try:
        fast = parse_url(text, listen=listen, uri_part=uri_part, default_port=default_port,
                         no_resolve=no_resolve, port_ranges=port_ranges)
        general = _parse_url(text, listen, uri_part, default_port, no_resolve, port_ranges)
    finally:
        url.lookup = saved
    assert _found(fast) == _found(general), text


def test_the_plain_form_is_read_by_the_fast_path():
    for text, host in (("127.0.0.1:110", "127.0.0.1"), ("0.0.0.0:65535", "0.0.0.0"),
                       ("255.249.10.9:1", "255.249.10.9")):
        assert url._PLAIN_INET4.fullmatch(text) is not None
        assert _found(parse_url(text, listen=True)) == _found(
            _parse_url(text, True, False, 0, False, True))
        assert parse_url(text).host == host
    for text in ("127.0.0.01:110", "127.0.0.1:0110", "256.0.0.1:110", "1.2.3.4:0",
                 "1.2.3.4:65536", "1.2.3:110", "1.2.3.4:110-112", "1.2.3.\u0663:110"):
        m = url._PLAIN_INET4.fullmatch(text)
        assert m is None or int(m[2]) > 65535, text
