"""Users for the admin and API tests."""

from __future__ import annotations

import uuid
from typing import Any


def user_with(*perms: str, staff: bool = True, username: str | None = None) -> Any:
    """A new user holding the given ``sqs_broker`` permission codenames."""
    from django.contrib.auth.models import Permission, User

    name = username or f"u{uuid.uuid4().hex[:8]}"
    user = User.objects.create_user(name, password="pw", is_staff=staff)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="sqs_broker", codename__in=perms)
    )
    if len(perms) != user.user_permissions.count():
        raise AssertionError(f"unknown permission among {perms}")
    return user
