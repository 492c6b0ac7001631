"""The README and docs/ as a reader meets them: a short landing page, no dead link."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import ROOT

#: Every word of the README counts, code blocks and tables included: the page a visitor reads.
README_MAX_WORDS = 1800

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def documents() -> list[Path]:
    """The README, CONTRIBUTING, the CHANGELOG and every page of docs/."""
    top = [ROOT / name for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md")]
    return [*top, *sorted((ROOT / "docs").glob("*.md"))]


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``path``."""
    found: set[str] = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        if not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def relative_links(path: Path) -> list[str]:
    """The targets of ``path``'s links that stay in the repository (code blocks left out)."""
    text = FENCE.sub("", path.read_text())
    targets = [a or b for a, b in LINK.findall(text)]
    return [t for t in targets if not re.match(r"[a-z]+:", t)]


def test_readme__at_most_1800_words() -> None:
    """The README is a landing page: every word counted, at most 1,800."""
    words = len((ROOT / "README.md").read_text().split())
    assert words <= README_MAX_WORDS, f"README.md has {words} words; move detail into docs/"


def test_readme__first_commands_are_make_run_and_make_test() -> None:
    """The README's first code block is the two set-up commands, and nothing else."""
    first = FENCE.search((ROOT / "README.md").read_text())
    assert first is not None
    commands = [
        line.split("#", 1)[0].strip() for line in first.group(0).splitlines()[1:-1] if line.strip()
    ]
    assert commands == ["make run", "make test"]


def test_readme__commands_need_no_activated_virtualenv() -> None:
    """Outside the adoption steps, manage.py runs with .venv's Python, never a bare ``python``."""
    for block in FENCE.findall((ROOT / "README.md").read_text()):
        for line in block.splitlines():
            assert not re.match(r"\s*python3? manage\.py", line), line


def test_docs__relative_links_resolve() -> None:
    """Every relative link of the top-level pages and docs/ names an existing file and heading."""
    broken = []
    for path in documents():
        for target in relative_links(path):
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_anchors__follow_github_slugs() -> None:
    """Headings become GitHub's anchors: lower case, punctuation dropped, repeats numbered."""
    page = ROOT / "docs" / "findings.md"
    assert "manage-py-sqs_check" not in anchors(page)
    assert "managepy-sqs_check" in anchors(page)


def test_configuration__documents_every_variable_and_setting() -> None:
    """docs/configuration.md names every variable settings/ reads and every SQS_BROKER_ setting."""
    from sqs_broker.conf import Settings
    from sqs_broker.settings import VARIABLES

    text = (ROOT / "docs" / "configuration.md").read_text()
    settings = [f"SQS_BROKER_{name}" for name in dir(Settings) if name.isupper()]
    assert settings, "conf.Settings lists no setting"
    missing = [name for name in (*VARIABLES, *settings) if f"`{name}`" not in text]
    assert not missing, f"not in docs/configuration.md: {missing}"


def test_docs__named_commands_exist() -> None:
    """Every ``manage.py NAME`` and ``-m benchmarks.NAME`` a page's code block runs exists."""
    from django.core.management import get_commands

    commands = set(get_commands())
    missing = []
    for path in documents():
        for block in FENCE.findall(path.read_text()):
            for name in re.findall(r"manage\.py (\w+)", block):
                if name not in commands:
                    missing.append(f"{path.relative_to(ROOT)}: manage.py {name}")
            for name in re.findall(r"-m benchmarks\.(\w+)", block):
                if not (ROOT / "benchmarks" / f"{name}.py").exists():
                    missing.append(f"{path.relative_to(ROOT)}: benchmarks.{name}")
    assert not missing, "\n".join(missing)
