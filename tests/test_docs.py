"""The user guide (docs/*.md, README.md) against the code and the files it points to.

* every relative link and image resolves to a file, and a ``#anchor`` into a Markdown file to one
  of its headings (GitHub's heading ids);
* every worksheet function of ``xl_factorlasso.udfs.__all__`` has its section in functions.md,
  every FL_* contract name appears in workbook.md, every subcommand of the CLI in cli.md;
* the pictures: each PNG under docs/img is a PNG, is used by the guide and stays small; each one
  ``render_screenshots.py`` produces is referenced.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]
GUIDE = ["index", "install", "ribbon", "functions", "workbook", "cli", "server", "licensing"]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
LINK = re.compile(r"(!?)\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
HTML_IMG = re.compile(r"<img\s[^>]*src=\"([^\"]+)\"", re.I)


def _prose(text: str) -> str:
    """The Markdown without fenced code blocks and inline code spans."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(path: Path) -> list[tuple[bool, str]]:
    """(is_image, target) of every Markdown link and image outside code."""
    text = _prose(path.read_text(encoding="utf-8"))
    out = [(m.group(1) == "!", m.group(2)) for m in LINK.finditer(text)]
    out += [(True, m.group(1)) for m in HTML_IMG.finditer(text)]
    return out


def github_anchors(path: Path) -> set[str]:
    """The ids GitHub gives the headings of a Markdown file (duplicates get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(FENCE.sub("", path.read_text(encoding="utf-8"))):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))  # [text](url) -> text
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) is not None  # http:, https:, mailto:


def test_the_guide_pages_exist_and_index_links_every_page():
    index = {t.split("#")[0] for _, t in links(DOCS / "index.md")}
    for page in GUIDE:
        assert (DOCS / f"{page}.md").is_file(), page
        if page != "index":
            assert f"{page}.md" in index, f"docs/index.md does not link {page}.md"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = readme.index("make demo"), readme.index("make test")
    assert max(commands) < readme.index("docs/index.md"), "README: the two commands come first"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_and_images_resolve(page):
    problems = []
    for is_image, target in links(page):
        if _is_external(target):
            continue
        file_part, _, anchor = unquote(target).partition("#")
        dest = page if file_part == "" else (page.parent / file_part).resolve()
        if not dest.exists():
            problems.append(f"{target}: {dest} does not exist")
            continue
        if is_image and not dest.is_file():
            problems.append(f"{target}: not a file")
        if anchor and dest.suffix == ".md" and anchor not in github_anchors(dest):
            problems.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not problems, "\n".join(problems)


def test_every_worksheet_function_has_its_section_in_functions_md():
    from xl_factorlasso import udfs

    text = (DOCS / "functions.md").read_text(encoding="utf-8")
    headings = {m.group(1).strip() for m in HEADING.finditer(text)}
    missing = [f for f in udfs.__all__ if f.startswith("FLASSO_") and f not in headings]
    assert not missing, f"functions.md has no '## NAME' section for {missing}"
    assert any(f.startswith("FLASSO_") for f in udfs.__all__)


def test_every_contract_name_is_in_workbook_md():
    from xl_factorlasso.workbook import CONTRACT

    text = (DOCS / "workbook.md").read_text(encoding="utf-8")
    missing = [s.name for s in CONTRACT if f"`{s.name}`" not in text]
    assert not missing, missing
    assert all(s.name.startswith("FL_") for s in CONTRACT)


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    from xl_factorlasso.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_cli_subcommand_and_option_is_in_cli_md():
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    headings = {m.group(1).strip().strip("`") for m in HEADING.finditer(text)}
    subcommands = _subcommands()
    assert {"demo", "refit", "inspect"} <= set(subcommands)
    for name, sub in subcommands.items():
        assert name in headings, f"cli.md has no section for '{name}'"
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in text, f"cli.md does not mention {name} {flag}"
    assert "Exit status" in headings


def test_pictures_are_small_pngs_used_by_the_guide():
    images = sorted((DOCS / "img").glob("*.png"))
    assert images, "docs/img has no pictures: run python docs/render_screenshots.py"
    used = {(page.parent / unquote(t).split("#")[0]).resolve()
            for page in PAGES for is_image, t in links(page) if is_image and not _is_external(t)}
    for png in images:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", png.name
        assert len(data) < 200_000, f"{png.name} is {len(data):,} bytes"
        assert png.resolve() in used, f"{png.name} is not used by any page"
    assert sum(p.stat().st_size for p in images) < 800_000


def test_every_rendered_picture_is_referenced():
    spec = importlib.util.spec_from_file_location("_render", DOCS / "render_screenshots.py")
    render = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = render  # @dataclass looks its module up there
    try:
        spec.loader.exec_module(render)
    finally:
        del sys.modules[spec.name]
    names = [s.png for s in render.SHOTS] + ["ribbon_tab.png"]
    assert len(set(names)) == len(names)
    referenced = {Path(unquote(t)).name for page in PAGES for is_image, t in links(page)
                  if is_image}
    missing = [n for n in names if n not in referenced or not (DOCS / "img" / n).is_file()]
    assert not missing, f"rendered but not in the guide (or not rendered): {missing}"
