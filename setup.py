"""Build hook: the user guide goes into the wheel. Everything else is in pyproject.toml.

``docs/*.md`` and ``docs/img/*.png`` are copied to ``xl_factorlasso/docs/`` of the built package,
so that an installed copy has the guide (``xl-factorlasso --help`` prints where). They stay in
``docs/`` of the repository, where they are written and tested; an editable install reads them
there.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DOCS = ROOT / "docs"
GUIDE_PATTERNS = ("*.md", "img/*.png")


def guide_files() -> list[Path]:
    """The files of the user guide, relative to ``docs/``."""
    return sorted(p.relative_to(DOCS) for pattern in GUIDE_PATTERNS for p in DOCS.glob(pattern))


class BuildPyWithGuide(build_py):
    """``build_py`` that also copies the user guide into the package."""

    def run(self):
        super().run()
        if self.editable_mode:  # the package runs from the checkout, next to docs/
            return
        files = guide_files()
        if not (DOCS / "index.md").is_file():
            raise SystemExit(f"the user guide is missing ({DOCS / 'index.md'}): build from a "
                             "complete source checkout")
        target = Path(self.build_lib, "xl_factorlasso", "docs")
        for rel in files:
            self.mkpath(str((target / rel).parent))
            self.copy_file(str(DOCS / rel), str(target / rel))


setup(cmdclass={"build_py": BuildPyWithGuide})
