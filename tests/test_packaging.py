"""The wheel: what it ships (templates, translations, the licence) and what it must not."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from email.parser import Parser

import pytest

import sqs_broker
from tests.support import ROOT
from tests.support.files import fresh_copy

PACKAGE = ROOT / "sqs_broker"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # From a copy: setuptools stages files in the source tree's build/, and
    # what it left there from an older layout would end up in the wheel.
    source = fresh_copy(tmp_path_factory.mktemp("source"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob("sqs_broker-*.whl")
    return zipfile.ZipFile(path)


def test_wheel__ships_licence_templates_and_one_version(wheel: zipfile.ZipFile) -> None:
    """LICENSE, templates and compiled translations are in; the version is pyproject's."""
    names = wheel.namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "sqs_broker/templates/sqs_broker/dashboard.html" in names
    assert "sqs_broker/locale/zh_Hans/LC_MESSAGES/django.mo" in names
    metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    assert metadata["Version"] == sqs_broker.__version__
    classifiers = metadata.get_all("Classifier") or []
    for django in ("5.2", "6.0", "6.1"):
        assert f"Framework :: Django :: {django}" in classifiers


def test_wheel__holds_only_the_app(wheel: zipfile.ZipFile) -> None:
    """Neither the example project, nor its templates, nor the tests are installed."""
    tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"sqs_broker"}


def test_package__never_names_the_example_project() -> None:
    """No module of the app imports or names ``project`` (the example) or its demo tasks."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # A dotted path in a string: a hint, a default, a task name.
                names = re.findall(r"\bproject\.[\w.]+", node.value)
            else:
                continue
            if any(name == "project" or name.startswith("project.") for name in names):
                offenders.append(f"{path}:{node.lineno}")
    assert offenders == []


def test_package__writes_no_file_and_creates_no_user() -> None:
    """Only the example stack resets logins and keeps state in .local/; the app does neither."""
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "set_password(" not in text, path
        assert '".local"' not in text, path
