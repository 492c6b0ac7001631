"""sqs_broker/locale: the Simplified Chinese catalogue is complete and compiled."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

from django.utils import translation

LOCALE = (
    Path(__file__).resolve().parent.parent / "sqs_broker" / "locale" / "zh_Hans" / "LC_MESSAGES"
)


def test_catalogue__every_message_translated() -> None:
    """No entry of django.po is empty or fuzzy, so no message falls back to English."""
    entries = (LOCALE / "django.po").read_text(encoding="utf-8").split("\n\n")[1:]
    untranslated = [
        entry
        for entry in entries
        if "#, fuzzy" in entry or re.search(r'msgstr ""\s*\Z', entry.strip() + "\n")
    ]
    assert untranslated == []


def _msgids(po: str) -> set[str]:
    """Every singular msgid of a .po file, its quoted lines joined."""
    found = set()
    for entry in po.split("\n\n")[1:]:
        match = re.search(r'^msgid ((?:".*"\n)+)', entry + "\n", re.M)
        if match and "msgid_plural" not in entry and "msgctxt" not in entry:
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
        assert translation.gettext("--timeout must be a positive number of seconds.") == (
            "--timeout 必须是正的秒数。"
        )
