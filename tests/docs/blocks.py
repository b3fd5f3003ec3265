"""The fenced blocks of the Markdown pages, their marks, and what a shown output may match. Pure:
no process is started here (tests/docs/runner.py runs the blocks).

The convention every page follows (docs/architecture.md, "Docs that are tested"):
- a ```sh (or ```bash, ```shell) block is run as it stands, in order with the page's other
  blocks, against a hub the test started, and must exit 0 (a page other than the README runs
  after the README's tour, which it continues);
- an HTML comment on the line right before the fence changes that:
  `<!-- not run: REASON -->`            never run (docker, kubectl, systemd, the suite itself);
  `<!-- started by the test: REASON -->` a long-running command the test starts itself;
  `<!-- set by the test: REASON -->`     the environment the test sets itself (the venv on
                                         PATH, the hub's URL and the tokens it printed);
  `<!-- output -->`                      on a non-command block: what the command block before
                                         it prints, `…` standing for any text within a line, and
                                         a line of only `…` for any number of lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMAND_LANGS = frozenset({"sh", "bash", "shell"})
MARK_RE = re.compile(
    r"^\s*<!--\s*(not run|started by the test|set by the test|output)\s*"
    r"(?::\s*(.*?))?\s*-->\s*$"
)
FENCE_RE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
ELLIPSIS = "…"
SKIPPED_DIRS = frozenset({".venv", ".git", "var", "build", "node_modules", ".pytest_cache"})


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its info-string language, its text (fence indentation
    removed) and the mark on the line before it, if any."""

    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    mark: str | None = None
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_command(self) -> bool:
        return self.lang in COMMAND_LANGS


def markdown_pages() -> list[Path]:
    """Every Markdown file of the repository (not the venv, git or data folders)."""
    return sorted(
        p
        for p in ROOT.rglob("*.md")
        if not SKIPPED_DIRS.intersection(p.relative_to(ROOT).parts[:-1])
    )


def command_pages() -> list[Path]:
    """The pages whose command blocks are run or marked: every Markdown page, the README first."""
    readme = ROOT / "README.md"
    return [readme, *(p for p in markdown_pages() if p != readme)]


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, in order."""
    lines = path.read_text("utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE_RE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, lang = opening.group(1), opening.group(2), opening.group(3).lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        before = lines[i - 1].strip() if i > 0 else ""
        mark = MARK_RE.match(before)
        if mark:
            kind, reason = mark.group(1), (mark.group(2) or "").strip()
        elif before.startswith("<!--"):  # a mark misspelt must not let a block run unmarked
            kind, reason = "unknown", before
        else:
            kind, reason = None, ""
        found.append(Block(path, i + 1, lang, "\n".join(body) + "\n", kind, reason))
        i = j + 1
    return found


def output_pattern(shown: str) -> re.Pattern[str]:
    """A pattern for a shown output: its lines in a row, each whole, `…` standing for any text
    within a line and a line of only `…` for any number of lines."""
    parts = []
    for line in shown.rstrip("\n").splitlines():
        if line.strip() == ELLIPSIS:
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        pieces = [re.escape(piece) for piece in line.rstrip().split(ELLIPSIS)]
        parts.append("^" + "[^\n]*?".join(pieces) + r"[ \t]*\n")
    return re.compile("".join(parts), re.MULTILINE)


def output_matches(shown: str, printed: str) -> bool:
    """Whether a shown output appears, as a run of whole lines, in what a command printed
    (line ends as a terminal shows them: CRLF counts as LF)."""
    text = printed.replace("\r\n", "\n").rstrip("\n") + "\n"
    return output_pattern(shown).search(text) is not None


# --- links ---------------------------------------------------------------------------------

LINK_RE = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def links(path: Path) -> list[tuple[int, str]]:
    """The (line, target) of every Markdown link and image outside fenced blocks."""
    found = []
    in_fence = False
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if FENCE_RE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for match in LINK_RE.finditer(_without_code_spans(line)):
            found.append((number, match.group(1) or match.group(2)))
    return found


def _without_code_spans(line: str) -> str:
    return re.sub(r"`[^`]*`", "", line)


def anchors(path: Path) -> set[str]:
    """The fragment ids GitHub gives the headings of a Markdown file."""
    seen: dict[str, int] = {}
    found = set()
    in_fence = False
    for line in path.read_text("utf-8").splitlines():
        if FENCE_RE.match(line):
            in_fence = not in_fence
            continue
        heading = None if in_fence else HEADING_RE.match(line)
        if not heading:
            continue
        slug = slugify(heading.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def slugify(heading: str) -> str:
    """GitHub's heading id: markup and punctuation dropped, lower case, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()  # a link: its text
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")
