"""The README and docs/ stay honest: every relative link resolves, the README's first commands are the
ones the Makefile and CI run, the README stays one page, and no user-facing file speaks of how the
project is developed. Each checker is also run once on a planted fault, so that it can fail."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200
# what the user-facing files must not say: the development process's limits, budgets and bookkeeping
DEVELOPMENT_NOTES = re.compile(
    r"device tool|carry: ?\[|[0-9]+ MiB a call|minutes of device time|issue [0-9]+|\bsession\b|next run")
USER_FACING = [README, ROOT / "docs", ROOT / "benchmarks", ROOT / "cluster"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def links(text):
    """The link targets of a Markdown text, outside fenced code blocks."""
    return LINK.findall(FENCE.sub("", text))


def slug(heading):
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page):
    return {slug(line.lstrip("#")) for line in FENCE.sub("", page.read_text()).splitlines()
            if re.match(r"#{1,6} ", line)}


def broken_links(page):
    """The relative links of `page` whose file does not exist (or, into a Markdown file, whose anchor
    names no heading there)."""
    broken = []
    for target in links(page.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, file:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_file():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(target)
    return broken


def first_commands(text):
    """The commands of the README's first code block, comments dropped; it must come before the
    first section heading (the first screen)."""
    block = re.search(r"^```[a-z]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    heading = re.search(r"^## ", text, re.MULTILINE)
    if block is None or (heading is not None and heading.start() < block.start()):
        return []
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.split("#")[0].strip()]


def make_target(makefile, target):
    """The recipe lines of a Makefile target (None when the target is missing)."""
    match = re.search(rf"^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n?)*)", makefile, re.MULTILINE)
    return None if match is None else [line.strip() for line in match.group(1).splitlines()]


def ci_commands(script):
    return [line.strip() for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def development_notes(paths):
    """(file, line number, line) of every line in the text files under `paths` that speaks of how the
    project is developed."""
    found = []
    for top in paths:
        for path in sorted([top] if top.is_file() else top.rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            name = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
            found += [(name, number, line) for number, line in
                      enumerate(text.splitlines(), 1) if DEVELOPMENT_NOTES.search(line)]
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_the_readme_links_every_docs_page():
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README.read_text())}
    assert set(PAGES[1:]) - linked == set()


def test_the_readme_shows_first_the_commands_the_makefile_and_ci_run():
    commands = first_commands(README.read_text())
    assert commands == ["make repro", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    repro, test = make_target(makefile, "repro"), make_target(makefile, "test")
    assert repro is not None and "dvc repro" in repro
    assert test is not None and any("pytest" in line for line in test)
    assert ci_commands((ROOT / ".ci/run").read_text())[-1] == "make test"


def too_long(text):
    return len(text.splitlines()) > README_MAX_LINES


def test_the_readme_is_one_page():
    assert not too_long(README.read_text())


def test_no_user_facing_file_speaks_of_how_the_project_is_developed():
    assert development_notes(USER_FACING) == []


def test_each_check_fails_on_a_planted_fault(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/page.md").write_text("# A page\n\n## The part\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/page.md#the-part) [gone](docs/missing.md) [anchor](docs/page.md#no-such)\n"
                    "[web](https://example.org/x) ![img](docs/none.png)\n```\n[in code](nowhere.md)\n```\n")
    assert broken_links(page) == ["docs/missing.md", "docs/page.md#no-such", "docs/none.png"]

    assert first_commands("intro\n```bash\nmake repro  # run\nmake test\n```\n## Next\n") == ["make repro",
                                                                                          "make test"]
    assert first_commands("## First\n```bash\nmake repro\n```\n") == []
    assert first_commands("```bash\nmake all\n```\n") != ["make repro", "make test"]
    assert make_target("repro: install\n\tdvc repro\n\ntest: install\n", "repro") == ["dvc repro"]
    assert make_target("install:\n\ttrue\n", "test") is None
    assert ci_commands("#!/bin/sh\n# make test\nmake test\nmake bench\n")[-1] != "make test"

    assert too_long("line\n" * (README_MAX_LINES + 1)) and not too_long("line\n" * README_MAX_LINES)

    notes = tmp_path / "notes.sh"
    notes.write_text("# fits the device tool's 64 MiB a call\n# a plain option\n# see issue 18; next run\n")
    assert [number for _, number, _ in development_notes([tmp_path])] == [1, 3]
