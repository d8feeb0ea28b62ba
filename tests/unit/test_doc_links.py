"""Every relative link in the project's Markdown resolves: the file (or directory) exists inside the
repository, and a `#anchor` names a heading of the target page as GitHub slugs it. Pure: the files are read,
nothing is fetched (links with a scheme are not checked)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_HTML_ID = re.compile(r"""<[a-zA-Z][^>]*?\s(?:id|name)=["']([^"']+)["']""")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# An inline link or image: [text](target "title"); one level of parentheses inside the target.
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|(?:[^()\s]|\([^()\s]*\))*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")
# What GitHub's slugger (github-slugger) removes from a heading's text: everything but letters, marks,
# numbers, connector punctuation (`_`), spaces and hyphens.
_NOT_SLUG = re.compile(r"[^\w\- ]", re.UNICODE)


def _outside_code(text: str) -> list[tuple[int, str]]:
    """The lines that are not in fenced code blocks, numbered from 1, with inline code spans blanked."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if match:
            marker = match.group(1)
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
            continue
        if fence is None:
            lines.append((number, line))
    return lines


def _heading_text(raw: str) -> str:
    """A heading's text as GitHub renders it: code spans keep their content, links and images their text."""
    text = _CODE_SPAN.sub(lambda m: m.group(2).strip(), raw)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"<[^>]+>", "", text)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (before the -1, -2 suffixes of repeated headings)."""
    return _NOT_SLUG.sub("", _heading_text(heading).strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown page has: its headings' slugs (repeats numbered as GitHub numbers them),
    and the ids and names of its HTML elements."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _outside_code(text):
        heading = _HEADING.match(line)
        if heading:
            slug = github_slug(heading.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
        found.update(_HTML_ID.findall(line))
    return found


def links(text: str) -> list[tuple[int, str]]:
    """The link targets of a Markdown text, with their line numbers (code blocks and code spans left out)."""
    targets: list[tuple[int, str]] = []
    for number, line in _outside_code(text):
        prose = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        for match in _INLINE_LINK.finditer(prose):
            targets.append((number, match.group(1)))
        definition = _REFERENCE_DEFINITION.match(prose)
        if definition:
            targets.append((number, definition.group(1)))
    return [(number, target.strip("<>")) for number, target in targets]


def broken_links(text: str, source: Path, root: Path) -> list[str]:
    """What is wrong with the relative links of `text`, the content of the file `source` under `root`."""
    problems: list[str] = []
    where = source.relative_to(root)
    page_anchors: dict[Path, set[str]] = {}
    for number, target in links(text):
        if not target or _SCHEME.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part.split("?", 1)[0])
        resolved = (source.parent / path_part).resolve() if path_part else source.resolve()
        if not resolved.is_relative_to(root.resolve()):
            problems.append(f"{where}:{number}: {target}: outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{where}:{number}: {target}: no such file")
            continue
        if not anchor or resolved.suffix.lower() != ".md":
            continue
        if resolved not in page_anchors:
            page_anchors[resolved] = anchors(text if resolved == source.resolve() else resolved.read_text())
        if unquote(anchor).lower() not in page_anchors[resolved]:
            problems.append(
                f"{where}:{number}: {target}: no heading #{anchor} in {resolved.relative_to(root)}"
            )
    return problems


def documentation_files(root: Path) -> list[Path]:
    files = [root / "README.md", root / "benchmarks" / "README.md"]
    files += sorted((root / "docs").glob("*.md"))
    files += sorted((root / "examples").glob("**/README.md"))
    return [path for path in files if path.is_file()]


def test_the_checked_files_are_the_project_documentation():
    names = {path.relative_to(ROOT).as_posix() for path in documentation_files(ROOT)}
    assert {"README.md", "benchmarks/README.md", "docs/local-cloud.md"} <= names
    assert any(name.startswith("examples/") for name in names)


@pytest.mark.parametrize("path", documentation_files(ROOT), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path: Path):
    assert broken_links(path.read_text(), path, ROOT) == []


def test_a_broken_file_link_and_a_broken_anchor_are_reported(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text(
        "# Guide\n\n## Deploying `prod`, safely\n\n## Notes\n\n## Notes\n"
    )
    page = tmp_path / "README.md"
    text = (
        "# Title\n\n"
        "Good: [the guide](docs/guide.md), [a section](docs/guide.md#deploying-prod-safely),\n"
        "[the second Notes](docs/guide.md#notes-1), [this page](#title), [AWS](https://aws.amazon.com/).\n"
        "Broken: [a file](docs/missing.md) and [an anchor](docs/guide.md#no-such-heading).\n\n"
        "```\n[in a code block](docs/also-missing.md)\n```\n"
        "And `[in a code span](docs/missing-too.md)`.\n"
    )
    page.write_text(text)

    problems = broken_links(text, page, tmp_path)

    assert problems == [
        "README.md:5: docs/missing.md: no such file",
        "README.md:5: docs/guide.md#no-such-heading: no heading #no-such-heading in docs/guide.md",
    ]


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Compressed inputs (`make bench`, third part)", "compressed-inputs-make-bench-third-part"),
        ("`localcloud/services/lambda_/runner.py`", "localcloudserviceslambda_runnerpy"),
        ("Cold starts (`make bench`, fifth part; issue 19)", "cold-starts-make-bench-fifth-part-issue-19"),
        (
            "Regulated accounts: the strict compliance profile",
            "regulated-accounts-the-strict-compliance-profile",
        ),
        ("What is acknowledged, and why", "what-is-acknowledged-and-why"),
    ],
)
def test_headings_are_slugged_as_github_slugs_them(heading: str, slug: str):
    assert github_slug(heading) == slug
