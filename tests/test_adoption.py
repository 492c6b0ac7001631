"""docs/adoption.md, applied to a new ``startproject`` exactly as written.

The page marks each block an adopter copies with ``<!-- adopt: ACTION PATH -->``; this test
reads those blocks, applies them to a throwaway project and checks what the page promises
(a real worker runs the page's task from the local SQS and its result is stored), so the two
cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.workers import Worker

#: ``<!-- adopt: append mysite/settings.py -->`` then a fenced block, both maybe indented.
BLOCK = re.compile(
    r"^(?P<indent>[ ]*)<!-- adopt: (?P<action>append|write|env)(?: (?P<path>\S+))? -->\n"
    r"(?P=indent)```\w*\n(?P<body>.*?)^(?P=indent)```",
    re.MULTILINE | re.DOTALL,
)

#: What a fresh shell has of ours: nothing (the page's env block adds the local SQS).
PROJECT_PREFIXES = ("DJANGO_", "SQS_", "AWS_", "CELERY_", "DATABASE_")

CLIENT_SCRIPT = """
from django.contrib.auth import get_user_model
from django.test import Client

user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
client = Client(HTTP_HOST="localhost")
client.force_login(user)
answers = {}
for name, url in [
    ("dashboard", "/admin/sqs_broker/dashboard/"),
    ("stats", "/sqs/stats.json"),
    ("metrics", "/sqs/metrics"),
]:
    response = client.get(url)
    answers[name] = [response.status_code, response.content.decode()[:20000]]
print("ANSWERS" + json.dumps(answers))
"""

TASK_SCRIPT = """
from django_celery_results.models import TaskResult
from mysite.tasks import mul

r = mul.delay(6, 7)
value = r.get(timeout=60)
row = TaskResult.objects.get(task_id=r.id)
from django.contrib.auth import get_user_model
from django.test import Client

client = Client(HTTP_HOST="localhost")
client.force_login(get_user_model().objects.get(username="root"))
page = client.get("/admin/sqs_broker/dashboard/task/", {"id": r.id}).content.decode()
print("RESULT" + json.dumps([value, row.status, row.result, row.task_name, page[:40000]]))
"""


#: The page whose marked blocks are applied.
ADOPTION = ROOT / "docs" / "adoption.md"


def adoption_blocks() -> list[tuple[str, str | None, str]]:
    """``(action, path, body)`` for every marked block of docs/adoption.md, in order."""
    text = ADOPTION.read_text()
    found = []
    for match in BLOCK.finditer(text):
        body = textwrap.dedent(match["body"]).strip()
        found.append((match["action"], match["path"], body + "\n"))
    return found


def exported(body: str) -> dict[str, str]:
    """The variables of ``export A=1 B=2`` lines (comments dropped)."""
    env = {}
    for line in body.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("export "):
            for pair in line.removeprefix("export ").split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_adoption__marks_the_blocks() -> None:
    """docs/adoption.md still carries every block this test applies."""
    actions = [(action, path) for action, path, _ in adoption_blocks()]
    assert actions == [
        ("append", "mysite/settings.py"),
        ("write", "mysite/celery.py"),
        ("write", "mysite/__init__.py"),
        ("write", "mysite/tasks.py"),
        ("append", "mysite/urls.py"),
        ("write", "mysite/wsgi.py"),
        ("write", "mysite/asgi.py"),
        ("write", "manage.py"),
        ("env", None),
    ]


@pytest.mark.django_db
def test_adoption__steps_adopt_the_app_into_a_new_project(
    tmp_path: Path, sqs_endpoint: str, unique: str
) -> None:
    """check, sqs_check --offline, the pages, and a task run by a worker with its result stored."""
    site = tmp_path / "site"
    site.mkdir()
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(site)],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_PREFIXES)}
    for action, path, body in adoption_blocks():
        if action == "env":
            env.update(exported(body))
            continue
        assert path is not None
        target = site / path
        if action == "append":
            target.write_text(target.read_text() + "\n" + body)
        else:
            target.write_text(body)
    # The page's placeholder port: this run's local SQS.
    assert env["SQS_ENDPOINT_URL"] == "http://127.0.0.1:PORT"
    env["SQS_ENDPOINT_URL"] = sqs_endpoint
    env["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
    # Queues of this test's own on the shared local SQS (not part of the page's steps).
    env["SQS_QUEUE_NAME_PREFIX"] = f"{unique}-"

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=site,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    check = manage("check")
    assert check.returncode == 0, check.stderr
    assert "System check identified no issues" in check.stdout, check.stdout + check.stderr
    migrate = manage("migrate", "--verbosity", "0")
    assert migrate.returncode == 0, migrate.stderr
    assert migrate.stderr == ""  # no system check warning on migrate either
    offline = manage("sqs_check", "--offline", "--json")
    assert offline.returncode == 0, offline.stdout + offline.stderr
    report = json.loads(offline.stdout)
    assert report["ok"] is True, report

    for server in ("wsgi", "asgi"):
        loaded = manage("shell", "-c", f"import mysite.{server} as m; print(type(m.application))")
        assert loaded.returncode == 0 and "Handler" in loaded.stdout, loaded.stderr
    shell = manage("shell", "-c", "import json\n" + CLIENT_SCRIPT)
    assert shell.returncode == 0, shell.stderr
    answers = json.loads(shell.stdout.split("ANSWERS", 1)[1])
    status, page = answers["dashboard"]
    assert status == 200
    assert 'id="sqs-queues"' in page and "sqs/stats.json" in page
    # The language switch offers the dashboard's languages, not Django's hundred.
    assert 'value="zh-hans"' in page and 'value="fr"' not in page
    status, stats = answers["stats"]
    assert status == 200 and stats.startswith("{")
    status, metrics = answers["metrics"]
    assert status == 200 and "# TYPE" in metrics

    # The page's task, sent from the site's shell, run by a real worker of the site from the
    # local SQS, its result read back through the page's result backend.
    log = tmp_path / "worker.log"
    argv = [
        sys.executable, "-m", "celery", "-A", "mysite", "worker", "--pool=solo",
        "--loglevel=INFO", "--without-heartbeat", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=site, env=env, stdout=out, stderr=subprocess.STDOUT)
    worker = Worker(process, log, env)
    try:
        worker.wait_ready()
        assert "mysite.tasks.mul" in worker.output()  # registered through CELERY_IMPORTS
        ran = manage("shell", "-c", "import json\n" + TASK_SCRIPT)
    finally:
        worker.stop()
    assert ran.returncode == 0, ran.stderr + worker.output()[-4000:]
    value, status, stored, name, page = json.loads(ran.stdout.split("RESULT", 1)[1])
    assert value == 42
    assert (status, stored) == ("SUCCESS", "42")
    # include() turns on extended results: the task page names the task, not "Task ?".
    assert name == "mysite.tasks.mul"
    assert "mysite.tasks.mul" in page and "Task ?" not in page
