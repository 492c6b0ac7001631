"""Bad input to sqs_broker.settings: only ImproperlyConfigured, naming the variable, no secret.

Hypothesis feeds every variable of :data:`sqs_broker.settings.VARIABLES`
random text, unicode, huge and negative numbers, JSON of the wrong shape,
URLs carrying a secret and empty strings, one variable at a time and several
at once, on top of an environment whose secrets are canaries.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqs_broker.settings import VARIABLES, celery_settings

CANARY_SECRET = "CanarySecretKey/+=Zq81x"
CANARY_TOKEN = "CanarySessionTokenQw93"
CANARY_QUEUE_SECRET = "CanaryQueueSecret/+Wx52"
CANARIES = (CANARY_SECRET, CANARY_TOKEN, CANARY_QUEUE_SECRET)
#: Variables whose value is itself a secret: never echoed in a message.
SECRET_VARIABLES = frozenset({"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/work"


def base_env() -> dict[str, str]:
    """A valid environment that holds every kind of secret."""
    return {
        "AWS_ACCESS_KEY_ID": "AKIACANARY0000000001",
        "AWS_SECRET_ACCESS_KEY": CANARY_SECRET,
        "AWS_SESSION_TOKEN": CANARY_TOKEN,
        "SQS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "SQS_PREDEFINED_QUEUES": json.dumps(
            {
                "work": {
                    "url": QUEUE_URL,
                    "access_key_id": "AKIACANARY0000000002",
                    "secret_access_key": CANARY_QUEUE_SECRET,
                    "backoff_policy": {"1": 10, "2": 20},
                    "backoff_tasks": ["project.demo.tasks.flaky"],
                }
            }
        ),
        "SQS_STS_ROLE_ARN": "arn:aws:iam::123456789012:role/celery-sqs",
        "SQS_STS_TOKEN_TIMEOUT": "1800",
        "SQS_STS_TOKEN_BUFFER_TIME": "60",
    }


def test_base_env__is_valid() -> None:
    """The environment the properties start from is accepted as is."""
    options = celery_settings(base_env())["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert options["predefined_queues"]["work"]["secret_access_key"] == CANARY_QUEUE_SECRET


# Environment values cannot hold NUL (the OS refuses them) nor lone surrogates.
env_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=60,
)
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-1, 0, 1, 899, 900, 20, 21, 43200, 43201, 65536, 2**63]),
).map(str)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | env_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(env_text, inner, max_size=3),
    max_leaves=8,
)
queue_specs = st.fixed_dictionaries(
    {},
    optional={
        "url": st.sampled_from([QUEUE_URL, QUEUE_URL + ".fifo", "ftp://x/y", ""]) | json_values,
        "access_key_id": st.just("AKIACANARY0000000002") | json_values,
        "secret_access_key": st.just(CANARY_QUEUE_SECRET),
        "backoff_policy": st.dictionaries(
            st.sampled_from(["1", "2", "0", "-1", "x", " 3", "1.5", "99999999999999999999"]),
            st.integers(-5, 50000) | json_values,
            max_size=4,
        )
        | json_values,
        "backoff_tasks": st.lists(env_text, max_size=3) | json_values,
        "region": json_values,
        "unknown": json_values,
    },
)
wrong_json = st.one_of(
    json_values.map(json.dumps),
    st.dictionaries(
        st.sampled_from(["work", "work.fifo", "", "x" * 81, "q"]), queue_specs | json_values
    ).map(json.dumps),
    st.sampled_from(["{", "[1, 2", "null", "[]", '{"a": 1}', "1e999", "[" * 5000]),
)
urls_with_secret = st.sampled_from(
    [
        f"http://AKIA:{CANARY_SECRET}@127.0.0.1:4566",
        f"https://user:{CANARY_QUEUE_SECRET}@sqs.local/path",
        f"amqp://guest:{CANARY_TOKEN}@localhost//",
        f"rpc://guest:{CANARY_TOKEN}@localhost//",
        f"sqs://AKIA:{CANARY_SECRET}@",
    ]
)
bad_values = st.one_of(
    st.just(""),
    st.just("   "),
    env_text,
    numbers,
    wrong_json,
    urls_with_secret,
    st.sampled_from(["true", "false", "yes", "maybe", "/nonexistent/file", "/", "/etc/hostname"]),
)


def _number_like(text: str) -> bool:
    """A number drawn as a "secret" may equal a number another variable's message shows."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def check(env: dict[str, str], changed: set[str]) -> None:
    """``celery_settings(env)`` returns, or raises ImproperlyConfigured that is safe and clear."""
    try:
        result: Any = celery_settings(env)
    except ImproperlyConfigured as exc:
        message = str(exc)
        assert message.strip(), "an empty message tells the user nothing"
        named = {name for name in VARIABLES if name in message}
        assert named & changed, f"{message!r} names none of {sorted(changed)}"
        leaked = [c for c in CANARIES if c in message]
        leaked += [
            secret
            for secret in (env.get(name, "").strip() for name in SECRET_VARIABLES & changed)
            if len(secret) >= 6 and secret in message and not _number_like(secret)
        ]
        assert not leaked, f"secret in message: {message!r}"
        assert exc.__cause__ is None or isinstance(exc.__cause__, ImproperlyConfigured)
    else:
        assert set(result) >= {"CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS"}


# Variables whose error names another variable, because of how it is used.
RELATED = {
    # An unset SQS_REGION falls back on AWS_DEFAULT_REGION.
    "AWS_DEFAULT_REGION": {"AWS_DEFAULT_REGION"},
    # A missing key is reported by the name of its missing partner.
    "AWS_ACCESS_KEY_ID": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
    "AWS_SECRET_ACCESS_KEY": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
    "AWS_SECRET_ACCESS_KEY_FILE": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
}

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("name", VARIABLES)
@PROPERTY_SETTINGS
@given(value=bad_values)
def test_one_variable__bad_values_raise_improperly_configured(name: str, value: str) -> None:
    """Any value of one variable either works or raises ImproperlyConfigured naming it."""
    env = base_env()
    env[name] = value
    check(env, RELATED.get(name, {name}) | {name})


@pytest.mark.parametrize("name", VARIABLES)
@PROPERTY_SETTINGS
@given(value=bad_values)
def test_one_variable__on_empty_env(name: str, value: str) -> None:
    """The same without any other variable set (no keys, no predefined queues)."""
    check({name: value}, RELATED.get(name, {name}) | {name})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(st.sampled_from(VARIABLES), bad_values, min_size=2, max_size=6))
def test_many_variables__bad_values_raise_improperly_configured(changes: dict[str, str]) -> None:
    """Several bad variables at once: still only ImproperlyConfigured naming one of them."""
    env = base_env()
    env.update(changes)
    related = set(changes)
    for name in changes:
        related |= RELATED.get(name, set())
    check(env, related)


@pytest.mark.parametrize(
    "name,value",
    [
        ("SQS_WAIT_TIME_SECONDS", str(10**30)),
        ("SQS_VISIBILITY_TIMEOUT", "-1"),
        ("SQS_POLLING_INTERVAL", "nan"),
        ("SQS_POLLING_INTERVAL", "inf"),
        ("SQS_STS_TOKEN_TIMEOUT", "1e3"),
        ("SQS_PREDEFINED_QUEUES", "[" * 100000),
        ("SQS_PREDEFINED_QUEUES", json.dumps({"work": {"url": QUEUE_URL, "backoff_policy": []}})),
        ("SQS_ENDPOINT_URL", f"http://AKIA:{CANARY_SECRET}@127.0.0.1:4566"),
        ("CELERY_RESULT_BACKEND", f"amqp://guest:{CANARY_TOKEN}@localhost//"),
        ("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", "-5"),
    ],
)
def test_known_bad_values__raise_improperly_configured(name: str, value: str) -> None:
    """Hand-picked edge cases each raise a clear error naming the variable."""
    env = base_env()
    env[name] = value
    with pytest.raises(ImproperlyConfigured) as caught:
        celery_settings(env)
    message = str(caught.value)
    assert name in message
    assert not any(canary in message for canary in CANARIES), message
    assert not math.isnan(len(message))


# --- the app's own SQS_BROKER_* Django settings (sqs_broker.conf) -----------------

CONF_NAMES = [
    name
    for name, member in vars(__import__("sqs_broker.conf", fromlist=["Settings"]).Settings).items()
    if isinstance(member, property)
]
setting_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    env_text,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(env_text, st.integers(), max_size=2),
)


def test_conf_names__found() -> None:
    """Every typed setting of sqs_broker.conf is exercised below."""
    assert {"API_TOKEN", "CACHE_TTL", "MAX_WORKERS", "GATHER_TIMEOUT"} <= set(CONF_NAMES)


@pytest.mark.parametrize("name", CONF_NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=setting_values)
def test_conf_setting__bad_values_raise_improperly_configured(name: str, value: Any) -> None:
    """Any value of a SQS_BROKER_* setting reads back or raises ImproperlyConfigured naming it."""
    from django.test import override_settings

    from sqs_broker.conf import app_settings

    setting = f"SQS_BROKER_{name}"
    with override_settings(**{setting: value}):
        try:
            getattr(app_settings, name)
        except ImproperlyConfigured as exc:
            assert setting in str(exc), str(exc)


@pytest.mark.parametrize("name", ["NATIVE_DELAY", "DISCOVER_BY_PREFIX", "TELEMETRY"])
def test_conf_flag__string_refused(name: str) -> None:
    """A switch set to the string "false" raises instead of turning the feature on."""
    from django.test import override_settings

    from sqs_broker.conf import app_settings

    setting = f"SQS_BROKER_{name}"
    with override_settings(**{setting: "false"}), pytest.raises(ImproperlyConfigured) as caught:
        getattr(app_settings, name)
    assert f"{setting} must be True or False" in str(caught.value)
    with override_settings(**{setting: False}):
        assert getattr(app_settings, name) is False


@pytest.mark.parametrize("path", [".", ".app", "no_dots"])
def test_conf_celery_app__malformed_path(path: str) -> None:
    """A dotted path import_string cannot even split raises ImproperlyConfigured naming it."""
    from django.test import override_settings

    from sqs_broker.conf import app_settings

    with (
        override_settings(SQS_BROKER_CELERY_APP=path),
        pytest.raises(ImproperlyConfigured, match="SQS_BROKER_CELERY_APP"),
    ):
        assert app_settings.CELERY_APP is None
