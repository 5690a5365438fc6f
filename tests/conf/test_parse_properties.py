"""Property tests: the parser never raises on any bytes, and build/parse is a fixpoint."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from angie_mail.conf.build import build_stmts, stmt_shape
from angie_mail.conf.parse import parse_string
from angie_mail.errors import ConfError

TRICKY = " \t\r\n;{}\"'\\$#)abcx\xa0\x0c"

values = st.text(alphabet=st.sampled_from(list(TRICKY) + ["\ufeff", "é", "\udcff"]),
                 max_size=12)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)


@st.composite
def trees(draw, depth=0):
    out = []
    for _ in range(draw(st.integers(0, 4 if depth < 3 else 0) if depth else st.integers(0, 6))):
        ws = [draw(names | values.filter(bool))] + draw(st.lists(values, max_size=4))
        block = draw(st.none() | (trees(depth + 1) if depth < 3 else st.just([])))
        out.append((tuple(ws), block))
    return out


def _text(tree, depth=0):
    from angie_mail.conf.build import word_text
    lines = []
    for ws, block in tree:
        head = " ".join(word_text(v) for v in ws)
        if block is None:
            lines.append(head + ";")
        else:
            lines.append(head + " {\n" + _text(block, depth + 1) + "}")
    return "\n".join(lines) + "\n"


def _shape(tree):
    return [(ws, None if b is None else _shape(b)) for ws, b in tree]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(trees())
def test_built_text_parses_back_to_the_same_tree(tree):
    text = _text(tree)
    p = parse_string(text, includes=False)
    assert p.main.error is None, (text, p.main.error)
    assert stmt_shape(p.main.stmts) == _shape(tree)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(list(TRICKY) + ["mail", "server", "listen"]),
                max_size=80).map("".join))
def test_text_tree_text_tree_is_a_fixpoint(text):
    p1 = parse_string(text, includes=False)
    if p1.main.error is not None:
        return
    out = build_stmts(p1.main.stmts)
    p2 = parse_string(out, includes=False)
    assert p2.main.error is None
    assert stmt_shape(p2.main.stmts) == stmt_shape(p1.main.stmts)
    assert build_stmts(p2.main.stmts) == out


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_give_a_tree_or_a_positioned_error(data):
    p = parse_string(data, includes=False)
    err = p.main.error
    assert err is None or (isinstance(err, ConfError) and err.line >= 1)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_random_bytes_as_param_never_raise(data):
    from angie_mail.conf.parse import parse_param
    p = parse_param(data.decode("utf-8", "surrogateescape"))
    assert p.main.error is None or p.main.error.where == "cmdline"


WORDISH = st.sampled_from(["a", "listen", "x;y", "'q'", '"d d"', '"it\'s"', "'\"'", '""',
                           "é", "\xa0", "a}b", "$v", "${x}", "\\;", "#c", ")", "'a'b",
                           '"a")', "{", "}", ";", " ", "\t", "\n", "\r\n", "# note\n",
                           "#é\n", "#" + "c" * 3999 + "\n", "#" + "c" * 4000 + "\n",
                           "#" + "c" * 4100 + "\n", "#" + "c" * 5000])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(WORDISH, max_size=30).map(" ".join))
def test_the_lexer_fast_paths_change_nothing(text):
    """Statements the lexer reads with one regular expression (plain and quoted words on
    one line, whitespace and comments between statements) come out exactly as from the
    character-by-character path: the same words, quotes, lines and columns, and the same
    error at the same place (long comments included: nginx's buffer limit)."""
    import re
    from angie_mail.conf import lexer
    fast = parse_string(text, includes=False).main
    saved = lexer._FAST_STMT, lexer._SKIP
    lexer._FAST_STMT = re.compile(r"(?!)")
    lexer._SKIP = re.compile(r"[ \t\r\n]*")
    try:
        slow = parse_string(text, includes=False).main
    finally:
        lexer._FAST_STMT, lexer._SKIP = saved
    assert fast.stmts == slow.stmts, text
    assert (fast.error and fast.error.text()) == (slow.error and slow.error.text()), text


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(WORDISH, max_size=40).map(" ".join))
def test_blocks_closed_by_the_lexer_give_the_parsers_tree(text):
    """Blocks of plain statements are closed by the lexer instead of the LALR parser:
    the tree, the close lines, the errors and where they are reported are the same as
    when the parser nests every block (unclosed and stray braces included)."""
    from angie_mail.conf import lexer
    folded = parse_string(text, includes=False).main
    lexer.FOLD_BLOCKS = False
    try:
        nested = parse_string(text, includes=False).main
    finally:
        lexer.FOLD_BLOCKS = True
    assert folded.stmts == nested.stmts, text
    assert (folded.error and folded.error.text()) == (nested.error and nested.error.text()), \
        text


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(trees())
def test_nested_blocks_closed_by_the_lexer_give_the_parsers_tree(tree):
    from angie_mail.conf import lexer
    text = _text(tree)
    for cut in (len(text), len(text) // 2, len(text) * 3 // 4):   # whole, and unclosed
        folded = parse_string(text[:cut], includes=False).main
        lexer.FOLD_BLOCKS = False
        try:
            nested = parse_string(text[:cut], includes=False).main
        finally:
            lexer.FOLD_BLOCKS = True
        assert folded.stmts == nested.stmts, text[:cut]
        assert (folded.error and folded.error.text()) == \
            (nested.error and nested.error.text()), text[:cut]
