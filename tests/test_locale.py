"""sqs_broker/locale: the Simplified Chinese catalogue is complete and compiled."""

from __future__ import annotations

import gettext
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import translation

from tests.support import ROOT

LOCALE = (
    Path(__file__).resolve().parent.parent / "sqs_broker" / "locale" / "zh_Hans" / "LC_MESSAGES"
)


def _untranslated(po: str) -> list[str]:
    """The entries of a .po file that are fuzzy or have an empty msgstr (or plural form)."""
    found = []
    for entry in po.split("\n\n")[1:]:
        fuzzy = re.search(r"^#,.*\bfuzzy\b", entry, re.M)
        # Each msgstr (or msgstr[N]) with its continuation lines, quotes stripped and joined.
        forms = re.findall(r'^msgstr(?:\[\d+\])? ((?:".*"\n?)+)', entry + "\n", re.M)
        empty = any(not "".join(re.findall(r'"(.*)"', form)) for form in forms)
        if fuzzy or empty or not forms:
            found.append(entry)
    return found


def test_catalogue__every_message_translated() -> None:
    """No entry of django.po is fuzzy or empty, plural forms too: no message falls back to
    English."""
    assert _untranslated((LOCALE / "django.po").read_text(encoding="utf-8")) == []


def test_untranslated__finds_fuzzy_empty_and_empty_plural_entries() -> None:
    """The check above can fail: each kind of untranslated entry is found, a translated one not."""
    po = (
        'msgid ""\nmsgstr ""\n"Language: zh_Hans\\n"\n\n'
        'msgid "a"\nmsgstr "甲"\n\n'
        '#, fuzzy, python-format\nmsgid "b %(n)s"\nmsgstr "乙 %(n)s"\n\n'
        'msgid "c"\nmsgstr ""\n\n'
        'msgid ""\n"d long"\nmsgstr ""\n"丁"\n\n'
        'msgid "e"\nmsgid_plural "es"\nmsgstr[0] ""\n'
    )
    assert [entry.strip().split("\n")[-2:] for entry in _untranslated(po)] == [
        ['msgid "b %(n)s"', 'msgstr "乙 %(n)s"'],
        ['msgid "c"', 'msgstr ""'],
        ['msgid_plural "es"', 'msgstr[0] ""'],
    ]


def _msgids(po: str, plural: bool = False) -> set[str]:
    """Every singular msgid of a .po file (``plural``: those of plural entries too), its quoted
    lines joined."""
    found = set()
    for entry in po.split("\n\n")[1:]:
        match = re.search(r'^msgid ((?:".*"\n)+)', entry + "\n", re.M)
        if match and (plural or "msgid_plural" not in entry) and "msgctxt" not in entry:
            text = "".join(re.findall(r'"(.*)"', match.group(1)))
            found.add(text.encode().decode("unicode_escape").encode("latin-1").decode("utf-8"))
    return found


def test_catalogue__compiled_file_is_current() -> None:
    """django.mo holds every message of django.po: nobody forgot compilemessages."""
    with (LOCALE / "django.mo").open("rb") as handle:
        compiled = set(gettext.GNUTranslations(handle)._catalog)
    missing = _msgids((LOCALE / "django.po").read_text(encoding="utf-8")) - compiled
    assert missing == set()
    with translation.override("zh-hans"):
        assert translation.gettext("SQS dashboard") == "SQS 仪表盘"


def test_catalogue__holds_every_message_of_the_sources(tmp_path: Path) -> None:
    """makemessages on a copy of the package adds nothing: no string marked for translation
    is missing from django.po (a missing one shows in English whatever the language)."""
    if shutil.which("xgettext") is None:
        pytest.fail("xgettext is missing: apt-get install gettext (makemessages needs it)")
    package = LOCALE.parents[2]
    copy = tmp_path / "sqs_broker"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    result = subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "zh_Hans", "--no-obsolete"],
        cwd=copy,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    regenerated = (copy / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po").read_text("utf-8")
    missing = _msgids(regenerated, plural=True) - _msgids(
        (LOCALE / "django.po").read_text(encoding="utf-8"), plural=True
    )
    assert missing == set(), (
        "Strings marked for translation are missing from django.po: in sqs_broker/, run "
        "django-admin makemessages -l zh_Hans --no-obsolete, translate every new or fuzzy "
        "entry, then django-admin compilemessages -l zh_Hans"
    )
