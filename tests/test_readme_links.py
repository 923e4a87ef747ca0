"""The README and the guides link only to files (and headings) that exist in the repository, and the
README's install and test commands are the ones CI (.ci/run) runs. No network: links with a scheme
(https:, mailto:) are not followed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {anchor(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text())
    text = re.sub(r"^(    |\t).*$", "", text, flags=re.M)  # indented code blocks
    return [m.group(1) for m in LINK.finditer(text)]


def shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:: not checked here
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no file {shown(dest)})")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target} (no heading #{fragment} in {shown(dest)})")
    return broken


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path):
    assert broken_links(path) == [], f"{shown(path)} has broken links"


def test_the_checker_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading: here\n")
    page.write_text("[ok](there.md#a-heading-here) [no file](missing.md) [no heading](there.md#nope) "
                    "[web](https://example.com/x)\n\n    [in code](ignored.md)\n")
    assert [b.split(" ")[0] for b in broken_links(page)] == ["missing.md", "there.md#nope"]


def test_the_readme_shows_what_ci_runs():
    """.ci/run's install and test commands appear verbatim in the README, which documents them."""
    readme = REPO / "README.md"
    ci = (REPO / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines()
                if line.strip().startswith(("pip install ", "python -m pytest"))]
    assert "pip install torch==2.13.0" in commands and "python -m pytest -q" in commands
    shown = {line.strip() for line in readme.read_text().splitlines() if line.startswith("    ")}
    assert [c for c in commands if c not in shown] == []
