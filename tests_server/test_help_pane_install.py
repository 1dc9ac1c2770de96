"""The Help pane's install text: only what exists (the template command), nothing fetched by
name from a package index (xl-factorlasso is not published)."""

from __future__ import annotations

import re


def test_help_pane_points_at_the_template_command_not_at_an_index(client):
    html = client.get("/taskpane.html").text
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))
    assert "xl-factorlasso template BOOK.xlsx writes a copy" in text
    assert "it is not on PyPI" in text
    assert not re.search(r"pip install [\"']?xl[-_]factorlasso(?![-\w.])", text)
