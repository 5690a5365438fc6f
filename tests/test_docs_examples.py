"""The example configurations in the pages on features beyond Angie pass -t."""

from __future__ import annotations

import os
import re

import pytest

from angie_mail.conf.analyze import analyze
from angie_mail.conf.parse import parse_string

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
PAGES = ["proxy-protocol.md", "login-events.md", "metrics.md", "backend-tls.md", "abuse.md"]


def examples():
    for page in PAGES:
        with open(os.path.join(DOCS, page), encoding="utf-8") as f:
            text = f.read()
        blocks = re.findall(r"```nginx\n(.*?)```", text, re.S)
        assert blocks, f"{page} has no ```nginx example"
        for i, block in enumerate(blocks):
            yield pytest.param(block, id=f"{page}#{i + 1}")


@pytest.mark.parametrize("text", list(examples()))
def test_example_passes_t(text):
    r = analyze(parse_string(text), check_files=False)
    assert r.ok, r.first_error.text()
