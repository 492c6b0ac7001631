"""Django system checks: a thin adapter over :mod:`sqs_broker.findings`.

Registered in :meth:`sqs_broker.apps.SqsBrokerConfig.ready`. ``manage.py
check`` and ``runserver`` report them; the refusal of servers and workers to
start lives in :mod:`sqs_broker.guard`. Only offline findings run here (no
network on every ``manage.py`` command); ``manage.py sqs_check`` adds the
online ones.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Info, Warning

from sqs_broker import findings
from sqs_broker.topology import Topology

_KIND = {"error": Error, "warning": Warning, "info": Info}


def to_message(finding: findings.Finding) -> CheckMessage:
    """A finding as Django's check message, its queue (if any) in front."""
    message = finding.message if not finding.queue else f"[{finding.queue}] {finding.message}"
    return _KIND[finding.level](message, hint=finding.hint, id=finding.id)


def check_debug_credentials(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """E001 alone, under the security tag."""
    finding = findings.unsafe_debug(Topology.of())
    return [to_message(finding)] if finding is not None else []


#: Findings about deployment only: ``manage.py check --deploy`` reports them.
DEPLOY = frozenset({"sqs_broker.W020"})


def check_configuration(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Every other offline finding. Information findings stay in ``sqs_check``."""
    return [
        to_message(f)
        for f in findings.offline(Topology.of())
        if f.id != "sqs_broker.E001" and f.level != "info" and f.id not in DEPLOY
    ]


def check_deploy(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """The deployment findings (W020), for ``manage.py check --deploy``."""
    return [to_message(f) for f in findings.offline(Topology.of()) if f.id in DEPLOY]
