"""sqs_broker.settings: environment -> Celery settings, and every bad value's error."""

from __future__ import annotations

import json
import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from kombu import Connection

from sqs_broker.settings import celery_settings, include

SECRET = "wJalr/XUtnFEMI+K7MDENG=bPx@RfiCY:%ZZ"


def opts(env: dict[str, str]) -> dict:
    return celery_settings(env)["CELERY_BROKER_TRANSPORT_OPTIONS"]


def test_defaults__no_keys_gives_bare_url_and_long_polling() -> None:
    """Without keys the URL is sqs:// and created queues get the configured wait time."""
    s = celery_settings({})
    assert s["CELERY_BROKER_URL"] == "sqs://"
    o = s["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert o["region"] == "us-east-1"
    assert o["visibility_timeout"] == 1800
    assert o["polling_interval"] == 0.1
    assert o["wait_time_seconds"] == 20
    assert o["sqs-creation-attributes"] == {"ReceiveMessageWaitTimeSeconds": "20"}
    assert "predefined_queues" not in o and "is_secure" not in o
    assert s["CELERY_WORKER_SEND_TASK_EVENTS"] is False


def test_keys__stay_out_of_url_unless_asked() -> None:
    """Keys in the environment leave the URL bare: boto3 reads them itself."""
    env = {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": SECRET}
    assert celery_settings(env)["CELERY_BROKER_URL"] == "sqs://"


def test_quoting__url_is_safequoted_and_predefined_secrets_stay_raw() -> None:
    """The URL's secret parses back byte-identical; predefined queue secrets are never quoted."""
    env = {
        "AWS_ACCESS_KEY_ID": "AKIA/+1",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "SQS_CREDENTIALS_IN_URL": "true",
        "SQS_PREDEFINED_QUEUES": json.dumps(
            {
                "q": {
                    "url": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
                    "access_key_id": "AKIA/+1",
                    "secret_access_key": SECRET,
                }
            }
        ),
    }
    s = celery_settings(env)
    conn = Connection(s["CELERY_BROKER_URL"])
    assert conn.userid == "AKIA/+1"
    assert conn.password == SECRET
    assert "/" not in s["CELERY_BROKER_URL"].split("@")[0].removeprefix("sqs://")
    queue = s["CELERY_BROKER_TRANSPORT_OPTIONS"]["predefined_queues"]["q"]
    assert queue["secret_access_key"] == SECRET
    assert queue["access_key_id"] == "AKIA/+1"


def test_endpoint__sets_host_and_is_secure() -> None:
    """SQS_ENDPOINT_URL becomes the URL's host and the is_secure option."""
    s = celery_settings({"SQS_ENDPOINT_URL": "http://127.0.0.1:4566"})
    assert s["CELERY_BROKER_URL"] == "sqs://127.0.0.1:4566"
    assert s["CELERY_BROKER_TRANSPORT_OPTIONS"]["is_secure"] is False
    s = celery_settings({"SQS_ENDPOINT_URL": "https://sqs.local:443"})
    assert s["CELERY_BROKER_TRANSPORT_OPTIONS"]["is_secure"] is True


def test_explicit_broker_url__wins() -> None:
    """CELERY_BROKER_URL overrides the URL built from the other variables."""
    env = {"CELERY_BROKER_URL": "sqs://a:b@", "SQS_CREDENTIALS_IN_URL": "true"}
    assert celery_settings(env)["CELERY_BROKER_URL"] == "sqs://a:b@"


def test_region__falls_back_to_aws_default_region() -> None:
    """SQS_REGION, else AWS_DEFAULT_REGION, else us-east-1."""
    assert opts({"AWS_DEFAULT_REGION": "eu-west-1"})["region"] == "eu-west-1"
    assert (
        opts({"AWS_DEFAULT_REGION": "eu-west-1", "SQS_REGION": "ap-south-1"})["region"]
        == "ap-south-1"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SQS_REGION": "eu-westt-1"},
            "SQS_REGION must be an AWS region name such as eu-west-1; got 'eu-westt-1': "
            "botocore {version} knows no such region; did you mean eu-west-1?",
        ),
        (
            {"AWS_DEFAULT_REGION": "useast1"},
            "AWS_DEFAULT_REGION must be an AWS region name such as eu-west-1; got 'useast1': "
            "botocore {version} knows no such region; did you mean us-east-1?",
        ),
        (
            # boto3 reads AWS_DEFAULT_REGION for its other clients (STS, S3): checked too.
            {"SQS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-3"},
            "AWS_DEFAULT_REGION must be an AWS region name such as eu-west-1; got 'us-east-3': "
            "botocore {version} knows no such region; did you mean us-east-2?",
        ),
        (
            {"SQS_REGION": "mars-north-1"},
            "SQS_REGION must be an AWS region name such as eu-west-1; got 'mars-north-1': "
            "botocore {version} knows no such region (a region newer than botocore needs "
            "pip install -U botocore).",
        ),
    ],
)
def test_region__unknown_to_botocore_names_the_variable_and_the_closest(env, message) -> None:
    """A well-shaped typo (eu-westt-1) is refused, naming the variable and the nearest region."""
    import botocore

    with pytest.raises(ImproperlyConfigured) as refused:
        opts(env)
    assert str(refused.value) == message.format(version=botocore.__version__)


@pytest.mark.parametrize(
    "name", ["eu-west-1", "us-gov-west-1", "cn-north-1", "eusc-de-east-1", "il-central-1"]
)
def test_region__every_partition_of_botocore_accepted(name) -> None:
    """Regions of the China, GovCloud and sovereign partitions are regions too."""
    assert opts({"SQS_REGION": name})["region"] == name


def test_predefined__backoff_keys_become_ints(tmp_path) -> None:
    """JSON keys are strings; kombu looks the policy up by an int receive count."""
    spec = {
        "q": {
            "url": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
            "backoff_policy": {"2": 20, "1": 10},
            "backoff_tasks": ["a.b"],
        }
    }
    path = tmp_path / "queues.json"
    path.write_text(json.dumps(spec))
    queue = opts({"SQS_PREDEFINED_QUEUES_FILE": str(path)})["predefined_queues"]["q"]
    assert queue["backoff_policy"] == {1: 10, 2: 20}
    assert list(queue["backoff_policy"]) == [1, 2]


def test_predefined__visibility_timeout_only_when_set() -> None:
    """With predefined queues the option is left out unless SQS_VISIBILITY_TIMEOUT is set."""
    queues = json.dumps({"q": {"url": "https://sqs.us-east-1.amazonaws.com/123456789012/q"}})
    assert "visibility_timeout" not in opts({"SQS_PREDEFINED_QUEUES": queues})
    explicit = opts({"SQS_PREDEFINED_QUEUES": queues, "SQS_VISIBILITY_TIMEOUT": "60"})
    assert explicit["visibility_timeout"] == 60


def test_sts__role_and_timeouts() -> None:
    """The STS role goes into the options with its timeout and buffer."""
    o = opts(
        {
            "SQS_STS_ROLE_ARN": "arn:aws:iam::123456789012:role/celery",
            "SQS_STS_TOKEN_TIMEOUT": "1800",
            "SQS_STS_TOKEN_BUFFER_TIME": "60",
        }
    )
    assert (o["sts_role_arn"], o["sts_token_timeout"], o["sts_token_buffer_time"]) == (
        "arn:aws:iam::123456789012:role/celery",
        1800,
        60,
    )


def test_result_backend_and_soft_shutdown() -> None:
    """Result backend and soft shutdown pass through when set."""
    s = celery_settings(
        {"CELERY_RESULT_BACKEND": "django-db", "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": "12.5"}
    )
    assert s["CELERY_RESULT_BACKEND"] == "django-db"
    assert s["CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT"] == 12.5
    assert "CELERY_RESULT_BACKEND" not in celery_settings({})


def test_broker_transport__project_transport_by_default() -> None:
    """An sqs:// broker gets the project's transport; the URL keeps its scheme."""
    s = celery_settings({})
    assert s["CELERY_BROKER_TRANSPORT"] == "sqs_broker.transport:Transport"
    assert s["CELERY_BROKER_URL"] == "sqs://"
    connection = Connection(s["CELERY_BROKER_URL"], transport=s["CELERY_BROKER_TRANSPORT"])
    from sqs_broker.transport import Transport

    assert connection.transport_cls is Transport or connection.get_transport_cls() is Transport


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("kombu", "kombu.transport.SQS:Transport"),
        (" SQS_BROKER ", "sqs_broker.transport:Transport"),
    ],
)
def test_broker_transport__sqs_transport_variable(value: str, expected: str) -> None:
    """SQS_TRANSPORT=kombu falls back to kombu's own transport (case and spaces ignored)."""
    assert celery_settings({"SQS_TRANSPORT": value})["CELERY_BROKER_TRANSPORT"] == expected


def rebuilt(connection: Connection) -> Connection:
    """``connection`` as unpickling makes it again (from what kombu shows of it)."""
    cls, args, _state = connection.__reduce__()
    return cls(*args)


def test_broker_transport__shown_as_sqs_broker() -> None:
    """kombu shows the project's transport as sqs-broker://, the secret masked, and kombu's
    as sqs://; each name resolves to the same transport (a pickled connection keeps it)."""
    from kombu.transport import SQS

    from sqs_broker.settings import TRANSPORTS
    from sqs_broker.settings.labels import LABELS
    from sqs_broker.transport import Transport

    s = celery_settings(
        {
            "AWS_ACCESS_KEY_ID": "AKIALABEL",
            "AWS_SECRET_ACCESS_KEY": "CanaryLabel/Secret+1",
            "SQS_CREDENTIALS_IN_URL": "true",
        }
    )
    connection = Connection(s["CELERY_BROKER_URL"], transport=s["CELERY_BROKER_TRANSPORT"])
    # What `celery worker` prints after "transport:" (celery/apps/worker.py).
    shown = connection.as_uri()
    assert shown == "sqs-broker://AKIALABEL:**@localhost//", (
        "kombu no longer reads kombu.connection.resolve_aliases for the label: see "
        "sqs_broker/settings/labels.py"
    )
    assert connection.get_transport_cls() is Transport
    assert rebuilt(connection).get_transport_cls() is Transport
    kombus = celery_settings({"SQS_TRANSPORT": "kombu"})
    theirs = Connection(kombus["CELERY_BROKER_URL"], transport=kombus["CELERY_BROKER_TRANSPORT"])
    assert theirs.as_uri().startswith("sqs://")
    assert rebuilt(theirs).get_transport_cls() is SQS.Transport
    assert set(LABELS) == set(TRANSPORTS.values())


def test_broker_transport__bad_value_names_the_choices() -> None:
    """An unknown SQS_TRANSPORT is refused with the valid names."""
    with pytest.raises(
        ImproperlyConfigured, match="SQS_TRANSPORT must be one of sqs_broker, kombu"
    ):
        celery_settings({"SQS_TRANSPORT": "redis"})


def test_broker_transport__other_scheme_keeps_its_transport() -> None:
    """A broker URL of another scheme is not given the SQS transport."""
    s = celery_settings({"CELERY_BROKER_URL": "redis://localhost:6379/0"})
    assert "CELERY_BROKER_TRANSPORT" not in s


def test_include__adds_settings_and_error_filter() -> None:
    """The one-line include fills a settings namespace and keeps earlier defaults."""
    namespace = {"CELERY_RESULT_BACKEND": "django-db"}
    include(namespace, env={})
    assert namespace["CELERY_BROKER_URL"] == "sqs://"
    assert namespace["CELERY_RESULT_BACKEND"] == "django-db"
    assert (
        namespace["DEFAULT_EXCEPTION_REPORTER_FILTER"]
        == "sqs_broker.redact.SafeExceptionReporterFilter"
    )


def test_include__extended_results_unless_the_project_chose() -> None:
    """Results carry the task's name (the task page's title) unless the project said otherwise."""
    namespace: dict[str, object] = {}
    include(namespace, env={})
    assert namespace["CELERY_RESULT_EXTENDED"] is True
    chosen: dict[str, object] = {"CELERY_RESULT_EXTENDED": False}
    include(chosen, env={})
    assert chosen["CELERY_RESULT_EXTENDED"] is False


def test_include__project_options_win_over_defaults() -> None:
    """Transport options the project set before include() stay; the environment fills the rest."""
    namespace = {
        "CELERY_BROKER_TRANSPORT_OPTIONS": {"region": "eu-west-1", "visibility_timeout": 60},
        "CELERY_ACCEPT_CONTENT": ["json", "msgpack"],
    }
    include(namespace, env={"SQS_WAIT_TIME_SECONDS": "5"})
    options = namespace["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert (options["region"], options["visibility_timeout"]) == ("eu-west-1", 60)
    assert options["wait_time_seconds"] == 5
    assert options["sqs-creation-attributes"] == {"ReceiveMessageWaitTimeSeconds": "5"}
    assert namespace["CELERY_ACCEPT_CONTENT"] == ["json", "msgpack"]


def test_include__same_value_in_both_is_no_conflict() -> None:
    """A project and an environment that agree are fine."""
    namespace = {"CELERY_BROKER_TRANSPORT_OPTIONS": {"region": "eu-west-1"}}
    include(namespace, env={"SQS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-2"})
    assert namespace["CELERY_BROKER_TRANSPORT_OPTIONS"]["region"] == "eu-west-1"


def test_include__project_wait_time_drives_creation_attributes() -> None:
    """Queues Celery creates long-poll with the wait the project chose."""
    namespace = {"CELERY_BROKER_TRANSPORT_OPTIONS": {"wait_time_seconds": 12}}
    include(namespace, env={})
    options = namespace["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert options["sqs-creation-attributes"] == {"ReceiveMessageWaitTimeSeconds": "12"}


def test_include__project_predefined_queues_drop_the_default_visibility_timeout() -> None:
    """As with SQS_PREDEFINED_QUEUES: predefined queues keep their own attribute."""
    queues = {"celery": {"url": "https://sqs.eu-west-1.amazonaws.com/123456789012/celery"}}
    namespace = {"CELERY_BROKER_TRANSPORT_OPTIONS": {"predefined_queues": queues}}
    include(namespace, env={})
    assert "visibility_timeout" not in namespace["CELERY_BROKER_TRANSPORT_OPTIONS"]


@pytest.mark.parametrize(
    ("project", "env", "named"),
    [
        (
            {"CELERY_BROKER_TRANSPORT_OPTIONS": {"region": "eu-west-1"}},
            {"SQS_REGION": "us-east-2"},
            "CELERY_BROKER_TRANSPORT_OPTIONS['region'] (and the environment variable SQS_REGION)",
        ),
        (
            {"CELERY_BROKER_TRANSPORT_OPTIONS": {"visibility_timeout": 60}},
            {"SQS_VISIBILITY_TIMEOUT": "120"},
            "SQS_VISIBILITY_TIMEOUT",
        ),
        (
            {"CELERY_BROKER_URL": "sqs://"},
            {"SQS_ENDPOINT_URL": "http://127.0.0.1:4566"},
            "CELERY_BROKER_URL (and the environment variable SQS_ENDPOINT_URL)",
        ),
        (
            {"CELERY_RESULT_BACKEND": "django-db"},
            {"CELERY_RESULT_BACKEND": "dynamodb://@eu-west-1/celery"},
            "CELERY_RESULT_BACKEND (and the environment variable CELERY_RESULT_BACKEND)",
        ),
    ],
)
def test_include__conflict_names_setting_and_variable(
    project: dict[str, object], env: dict[str, str], named: str
) -> None:
    """A setting the project and the environment both chose, differently, is refused by name."""
    with pytest.raises(ImproperlyConfigured, match=re.escape(named)) as caught:
        include(dict(project), env=env)
    assert "4566" not in str(caught.value) and "dynamodb" not in str(caught.value)


def test_include__region_from_aws_default_region_is_no_conflict() -> None:
    """AWS_DEFAULT_REGION, set by most AWS runtimes, never overrides the project's region."""
    namespace = {"CELERY_BROKER_TRANSPORT_OPTIONS": {"region": "eu-west-1"}}
    include(namespace, env={"AWS_DEFAULT_REGION": "us-east-2"})
    assert namespace["CELERY_BROKER_TRANSPORT_OPTIONS"]["region"] == "eu-west-1"


def test_include__transport_options_must_be_a_dict() -> None:
    """A mistyped CELERY_BROKER_TRANSPORT_OPTIONS is named."""
    with pytest.raises(
        ImproperlyConfigured, match="CELERY_BROKER_TRANSPORT_OPTIONS must be a dict"
    ):
        include({"CELERY_BROKER_TRANSPORT_OPTIONS": ["region"]}, env={})


URL = "https://sqs.us-east-1.amazonaws.com/123456789012/q"

BAD = [
    ({"SQS_WAIT_TIME_SECONDS": "25"}, "SQS_WAIT_TIME_SECONDS must be an integer from 0 to 20"),
    ({"SQS_WAIT_TIME_SECONDS": "-1"}, "SQS_WAIT_TIME_SECONDS"),
    (
        {"SQS_VISIBILITY_TIMEOUT": "abc"},
        "SQS_VISIBILITY_TIMEOUT must be an integer from 0 to 43200",
    ),
    ({"SQS_VISIBILITY_TIMEOUT": "43201"}, "SQS_VISIBILITY_TIMEOUT"),
    ({"SQS_POLLING_INTERVAL": "-0.5"}, "SQS_POLLING_INTERVAL must be a finite number >= 0"),
    ({"SQS_POLLING_INTERVAL": "nan"}, "SQS_POLLING_INTERVAL"),
    ({"SQS_CREDENTIALS_IN_URL": "maybe"}, "SQS_CREDENTIALS_IN_URL must be a boolean"),
    ({"SQS_CREDENTIALS_IN_URL": "true"}, "SQS_CREDENTIALS_IN_URL is true but"),
    ({"AWS_ACCESS_KEY_ID": "AKIA"}, "AWS_SECRET_ACCESS_KEY is missing"),
    ({"SQS_ENDPOINT_URL": "ftp://x"}, "SQS_ENDPOINT_URL must be http(s)://host[:port]"),
    ({"SQS_REGION": "Mars"}, "SQS_REGION must be an AWS region name"),
    ({"SQS_PREDEFINED_QUEUES": "{not json"}, "SQS_PREDEFINED_QUEUES is not valid JSON"),
    ({"SQS_PREDEFINED_QUEUES": "[1, 2]"}, "SQS_PREDEFINED_QUEUES must be a JSON object"),
    ({"SQS_PREDEFINED_QUEUES": '{"q": "x"}'}, "queue 'q' must be an object"),
    ({"SQS_PREDEFINED_QUEUES": '{"q": {}}'}, "queue 'q' needs a 'url'"),
    (
        {"SQS_PREDEFINED_QUEUES": json.dumps({"q": {"url": URL, "colour": 1}})},
        "unknown keys ['colour']",
    ),
    (
        {"SQS_PREDEFINED_QUEUES": json.dumps({"q": {"url": URL, "backoff_policy": {"0": 1}}})},
        "keys must be positive integers",
    ),
    (
        {"SQS_PREDEFINED_QUEUES": json.dumps({"q": {"url": URL, "backoff_policy": {"x": 1}}})},
        "keys must be positive integers",
    ),
    (
        {"SQS_PREDEFINED_QUEUES": json.dumps({"q": {"url": URL, "backoff_policy": {"1": 50000}}})},
        "range from 0 to 43200",
    ),
    ({"SQS_PREDEFINED_QUEUES": json.dumps({"q.fifo": {"url": URL}})}, "disagree on FIFO"),
    ({"SQS_PREDEFINED_QUEUES": json.dumps({"q": {"url": URL + ".fifo"}})}, "disagree on FIFO"),
    (
        {"SQS_PREDEFINED_QUEUES": json.dumps({"q": {"url": URL, "access_key_id": "a"}})},
        "needs both access_key_id and secret_access_key",
    ),
    (
        {"SQS_PREDEFINED_QUEUES_FILE": "/nonexistent/q.json"},
        "SQS_PREDEFINED_QUEUES_FILE names a file",
    ),
    (
        {"SQS_STS_TOKEN_TIMEOUT": "600"},
        "SQS_STS_TOKEN_TIMEOUT must be an integer from 900 to 43200",
    ),
    ({"SQS_STS_ROLE_ARN": "role"}, "SQS_STS_ROLE_ARN must be an IAM role ARN"),
    (
        {
            "SQS_STS_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
            "SQS_STS_TOKEN_BUFFER_TIME": "900",
        },
        "SQS_STS_TOKEN_BUFFER_TIME (900) must be less than SQS_STS_TOKEN_TIMEOUT (900)",
    ),
    ({"CELERY_RESULT_BACKEND": "rpc://"}, "CELERY_RESULT_BACKEND uses rpc://"),
    ({"CELERY_RESULT_BACKEND": "amqp://guest@localhost//"}, "CELERY_RESULT_BACKEND uses amqp://"),
    ({"CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": "soon"}, "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT"),
    (
        {
            "AWS_ACCESS_KEY_ID": "a",
            "AWS_SECRET_ACCESS_KEY": "b",
            "AWS_SESSION_TOKEN": "c",
            "SQS_CREDENTIALS_IN_URL": "1",
        },
        "AWS_SESSION_TOKEN cannot travel in the broker URL",
    ),
]


@pytest.mark.parametrize(("env", "expected"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_values__raise_improperly_configured_naming_the_variable(env, expected) -> None:
    """Each bad value raises ImproperlyConfigured with a message that names what to fix."""
    with pytest.raises(ImproperlyConfigured) as caught:
        celery_settings(env)
    assert expected in str(caught.value)


def test_bad_values__never_show_a_secret() -> None:
    """Predefined JSON that fails to parse is reported by position, not by content."""
    canary = "CANARY-secret-value-123"
    env = {"SQS_PREDEFINED_QUEUES": f'{{"q": {{"url": "{URL}", "secret_access_key": "{canary}"'}
    with pytest.raises(ImproperlyConfigured) as caught:
        celery_settings(env)
    assert canary not in str(caught.value)


#: Canary secrets with every character that breaks an unquoted URL.
UNQUOTED_SECRETS = [
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "12345/CanaryDigitsFirst+Zz",
    "Canary?Query#Frag/Part",
    "Canary:Colon/Slash@At+Plus",
]


def pieces(secret: str) -> list[str]:
    """The parts of ``secret`` between the characters a URL parser splits on."""
    import re

    return [p for p in re.split(r"[/?#@:+]", secret) if len(p) >= 4]


@pytest.mark.parametrize("secret", UNQUOTED_SECRETS)
def test_explicit_broker_url__unquoted_secret_refused_without_a_piece_of_it(secret) -> None:
    """An explicit URL with an unquoted secret is refused, naming the fix and no piece of it."""
    env = {"CELERY_BROKER_URL": f"sqs://AKIAEXAMPLE:{secret}@127.0.0.1:4566"}
    with pytest.raises(ImproperlyConfigured) as caught:
        celery_settings(env)
    message = str(caught.value)
    assert "CELERY_BROKER_URL" in message and "safequote" in message
    assert "AWS_SECRET_ACCESS_KEY" in message
    assert not [p for p in pieces(secret) if p in message], message
    assert "AKIAEXAMPLE" not in message and "127.0.0.1" not in message


@pytest.mark.parametrize("secret", UNQUOTED_SECRETS)
def test_explicit_broker_url__quoted_secret_accepted(secret) -> None:
    """The same secret safequoted is accepted and parses back byte-identical."""
    from kombu.utils.url import safequote

    url = f"sqs://AKIAEXAMPLE:{safequote(secret)}@127.0.0.1:4566"
    assert celery_settings({"CELERY_BROKER_URL": url})["CELERY_BROKER_URL"] == url
    assert Connection(url).password == secret


def test_endpoint__lone_user_info_not_echoed() -> None:
    """A token before the endpoint's host (no password) is not shown in the error."""
    token = "CanaryEndpointToken42"
    with pytest.raises(ImproperlyConfigured) as caught:
        celery_settings({"SQS_ENDPOINT_URL": f"http://{token}@127.0.0.1:4566"})
    assert "SQS_ENDPOINT_URL" in str(caught.value)
    assert token not in str(caught.value)


@pytest.mark.parametrize("name", ["SQS_PREDEFINED_QUEUES", "AWS_SECRET_ACCESS_KEY"])
def test_file__not_utf8_raises_improperly_configured(name, tmp_path) -> None:
    """A *_FILE that is not UTF-8 raises ImproperlyConfigured naming the variable, no bytes."""
    path = tmp_path / "value"
    path.write_bytes(b"Canary\xff\xfeLatin1\xe9")
    env = {f"{name}_FILE": str(path)}
    if name == "AWS_SECRET_ACCESS_KEY":
        env["AWS_ACCESS_KEY_ID"] = "AKIAEXAMPLE"
    with pytest.raises(ImproperlyConfigured) as caught:
        celery_settings(env)
    message = str(caught.value)
    assert f"{name}_FILE" in message and "UTF-8" in message
    assert "Canary" not in message


FILE_SECRET = "CanaryFileSecret/+=Ab12"


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "aws_secret"
    path.write_text(FILE_SECRET + "\n")
    return path


def test_secret_file__exported_like_the_inline_variable(monkeypatch, secret_file) -> None:
    """AWS_SECRET_ACCESS_KEY_FILE ends up where boto3 reads the secret, and reads again."""
    import os

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFILETEST")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY_FILE", str(secret_file))
    celery_settings()
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == FILE_SECRET
    celery_settings()  # a second read (a child process, the autoreloader) is not "both set"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "another-secret")
    with pytest.raises(ImproperlyConfigured, match="not both"):
        celery_settings()


def test_secret_file__other_mappings_leave_the_environment_alone(monkeypatch, secret_file):
    """Settings built from a mapping other than os.environ never write the environment."""
    import os

    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    env = {"AWS_ACCESS_KEY_ID": "AKIAFILETEST", "AWS_SECRET_ACCESS_KEY_FILE": str(secret_file)}
    celery_settings(env)
    assert "AWS_SECRET_ACCESS_KEY" not in os.environ and "AWS_SECRET_ACCESS_KEY" not in env


def _file_env(secret_file, unique: str) -> dict[str, str]:
    from tests.support.env import base_env

    env = base_env(
        AWS_ACCESS_KEY_ID="AKIAFILETEST",
        AWS_SECRET_ACCESS_KEY_FILE=str(secret_file),
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        SQS_WAIT_TIME_SECONDS="1",
    )
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    return env


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_secret_file__worker_consumes_with_it(
    sqs_endpoint, start_worker, secret_file, unique, tmp_path
):
    """A worker with only AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY_FILE runs a task."""
    import time

    from tests.support.env import make_app

    env = _file_env(secret_file, unique)
    worker = start_worker(env, wait=False)
    journal = tmp_path / "journal"
    make_app(env).send_task("project.demo.tasks.journal", args=(str(journal), "ran"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not journal.exists():
        assert worker.process.poll() is None, worker.output()
        time.sleep(0.1)
    assert journal.exists(), worker.output()[-3000:]
    assert "Partial credentials" not in worker.output()
    assert FILE_SECRET not in worker.output()


def test_secret_file__sqs_check_finds_the_credentials(sqs_endpoint, secret_file, unique) -> None:
    """sqs_check with the secret in a file reports no E018 and does not print it."""
    from tests.support.env import run_python

    env = _file_env(secret_file, unique)
    result = run_python("manage.py", "sqs_check", "--json", env={**env, "DJANGO_SECRET_KEY": "x"})
    assert "sqs_broker.E018" not in result.stdout, result.stdout[-2000:]
    assert result.returncode in (0, 1), result.stderr[-2000:]
    assert FILE_SECRET not in result.stdout + result.stderr


# --- large messages offloaded to S3 ---------------------------------------------------


def test_large_payloads__variables_become_app_settings() -> None:
    """SQS_LARGE_PAYLOAD_* set the SQS_BROKER_LARGE_PAYLOAD_* settings; none without a bucket."""
    from sqs_broker.settings import celery_conf

    assert not any(k.startswith("SQS_BROKER_") for k in celery_settings({}))
    env = {
        "SQS_LARGE_PAYLOAD_BUCKET": "my-bucket.payloads",
        "SQS_LARGE_PAYLOAD_PREFIX": "celery/",
        "SQS_LARGE_PAYLOAD_ENDPOINT_URL": "http://127.0.0.1:4566/",
    }
    namespace: dict[str, object] = {}
    include(namespace, env)
    assert namespace["SQS_BROKER_LARGE_PAYLOAD_BUCKET"] == "my-bucket.payloads"
    assert namespace["SQS_BROKER_LARGE_PAYLOAD_PREFIX"] == "celery/"
    assert namespace["SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    # A Celery app's configuration gets only Celery's keys.
    assert not any(key.startswith("sqs_broker") for key in celery_conf(env))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SQS_LARGE_PAYLOAD_BUCKET": "My_Bucket"}, "SQS_LARGE_PAYLOAD_BUCKET must be an S3"),
        ({"SQS_LARGE_PAYLOAD_BUCKET": "ab"}, "SQS_LARGE_PAYLOAD_BUCKET must be an S3"),
        ({"SQS_LARGE_PAYLOAD_PREFIX": "x/"}, "SQS_LARGE_PAYLOAD_PREFIX is set but"),
        (
            {"SQS_LARGE_PAYLOAD_ENDPOINT_URL": "http://127.0.0.1:4566"},
            "SQS_LARGE_PAYLOAD_ENDPOINT_URL is set but SQS_LARGE_PAYLOAD_BUCKET is not",
        ),
        (
            {"SQS_LARGE_PAYLOAD_BUCKET": "b-1", "SQS_LARGE_PAYLOAD_PREFIX": "/abs"},
            "SQS_LARGE_PAYLOAD_PREFIX must be a key prefix",
        ),
        (
            {"SQS_LARGE_PAYLOAD_BUCKET": "b-1", "SQS_LARGE_PAYLOAD_ENDPOINT_URL": "s3.local"},
            "SQS_LARGE_PAYLOAD_ENDPOINT_URL must be http(s)://host[:port]",
        ),
    ],
)
def test_large_payloads__bad_values_are_refused(env: dict[str, str], message: str) -> None:
    """Each bad value names its variable and what would be valid."""
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        celery_settings(env)


def test_large_payloads__project_setting_and_variable_disagree() -> None:
    """A bucket set in the settings module and another in the environment is refused."""
    namespace: dict[str, object] = {"SQS_BROKER_LARGE_PAYLOAD_BUCKET": "mine"}
    with pytest.raises(ImproperlyConfigured, match="SQS_LARGE_PAYLOAD_BUCKET"):
        include(namespace, {"SQS_LARGE_PAYLOAD_BUCKET": "theirs"})
    include(namespace, {"SQS_LARGE_PAYLOAD_BUCKET": "mine"})
    assert namespace["SQS_BROKER_LARGE_PAYLOAD_BUCKET"] == "mine"


def test_remote_control__off_unless_asked() -> None:
    """Without SQS_REMOTE_CONTROL nothing changes: remote control off, no fanout, no setting."""
    s = celery_settings({})
    assert s["CELERY_WORKER_ENABLE_REMOTE_CONTROL"] is False
    assert "supports_fanout" not in s["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert "SQS_BROKER_REMOTE_CONTROL" not in s
    off = celery_settings({"SQS_REMOTE_CONTROL": "false"})
    assert off["SQS_BROKER_REMOTE_CONTROL"] is False
    assert off["CELERY_WORKER_ENABLE_REMOTE_CONTROL"] is False


def test_remote_control__on_turns_on_celery_and_sns_fanout() -> None:
    """SQS_REMOTE_CONTROL=true: the setting, Celery's remote control and kombu's SNS fanout."""
    s = celery_settings({"SQS_REMOTE_CONTROL": "yes"})
    assert s["SQS_BROKER_REMOTE_CONTROL"] is True
    assert s["CELERY_WORKER_ENABLE_REMOTE_CONTROL"] is True
    assert s["CELERY_BROKER_TRANSPORT_OPTIONS"]["supports_fanout"] is True
    assert s["CELERY_WORKER_SEND_TASK_EVENTS"] is False  # events stay off: celeryev is a topic


def test_remote_control__bad_value_names_the_variable() -> None:
    """A value that is no boolean is refused, naming the variable."""
    with pytest.raises(ImproperlyConfigured, match="SQS_REMOTE_CONTROL must be a boolean"):
        celery_settings({"SQS_REMOTE_CONTROL": "sometimes"})


def test_include__remote_control_setting_in_the_module() -> None:
    """SQS_BROKER_REMOTE_CONTROL = True before include() turns Celery's switch and fanout on."""
    namespace: dict[str, object] = {"SQS_BROKER_REMOTE_CONTROL": True}
    include(namespace, env={})
    assert namespace["CELERY_WORKER_ENABLE_REMOTE_CONTROL"] is True
    assert namespace["CELERY_BROKER_TRANSPORT_OPTIONS"]["supports_fanout"] is True  # type: ignore[index]
    quiet: dict[str, object] = {}
    include(quiet, env={})
    assert quiet["CELERY_WORKER_ENABLE_REMOTE_CONTROL"] is False


@pytest.mark.parametrize(
    ("namespace", "env", "message"),
    [
        (
            {"SQS_BROKER_REMOTE_CONTROL": "yes"},
            {},
            "SQS_BROKER_REMOTE_CONTROL must be True or False",
        ),
        (
            {"SQS_BROKER_REMOTE_CONTROL": True, "CELERY_WORKER_ENABLE_REMOTE_CONTROL": False},
            {},
            "CELERY_WORKER_ENABLE_REMOTE_CONTROL is False",
        ),
        ({"CELERY_WORKER_ENABLE_REMOTE_CONTROL": False}, {"SQS_REMOTE_CONTROL": "on"}, "is False"),
        ({"SQS_BROKER_REMOTE_CONTROL": True}, {"SQS_REMOTE_CONTROL": "off"}, "SQS_REMOTE_CONTROL"),
    ],
)
def test_include__remote_control_contradictions_refused(
    namespace: dict[str, object], env: dict[str, str], message: str
) -> None:
    """A setting that is no bool, or the module and the environment disagreeing, is refused."""
    with pytest.raises(ImproperlyConfigured, match=message):
        include(dict(namespace), env=env)
