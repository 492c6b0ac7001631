"""The catalogue of findings: every id with the caveat it guards.

Ids are stable and never reused: ``E`` errors, ``W`` warnings, ``I``
information; the letter gives the level. ``docs/findings.md``'s table is
written from it (``scripts/findings_docs.py``). A new pitfall adds one row here
and one check in the topic module it belongs to.
"""

from __future__ import annotations

#: id -> the caveat it guards. docs/findings.md's table is written from it.
CATALOGUE: dict[str, str] = {
    # --- offline: the broker URL and its credentials
    "sqs_broker.E001": "DEBUG is on while the broker URL carries AWS credentials: "
    "Django's debug page and error reports can expose them.",
    "sqs_broker.E002": "The URL's credentials do not parse back to a key and secret: an "
    "unescaped '/', '?' or '#' ends kombu's reading of the secret (use safequote), or a "
    "key has no secret.",
    "sqs_broker.W001": "The broker is not sqs://: sqs_broker's settings and checks do not apply.",
    "sqs_broker.E003": "Predefined-queue credentials look URL-encoded (%2F, %2B, %3D...): "
    "boto3 signs with them as written, so SQS answers 'signature does not match'.",
    # --- offline: polling
    "sqs_broker.E004": "wait_time_seconds outside 0-20: every ReceiveMessage is rejected.",
    "sqs_broker.I001": "polling_interval adds to long polling: an empty poll cycle lasts "
    "wait_time_seconds + polling_interval.",
    "sqs_broker.W002": "polling_interval longer than wait_time_seconds: most of each cycle "
    "nobody is listening, and new messages wait for the sleep to end.",
    "sqs_broker.W003": "Short polling with polling_interval under 1 s: a busy loop that "
    "costs CPU and requests.",
    "sqs_broker.I002": "Short polling: empty receives are billed and sample only some SQS servers.",
    # --- offline: visibility timeout and shutdown
    "sqs_broker.E005": "visibility_timeout outside 0-43200: SQS rejects it.",
    "sqs_broker.E006": "Visibility timeout shorter than the longest ETA/countdown "
    "(SQS_BROKER_MAX_ETA): the message is redelivered while the worker holds it, and the "
    "task runs again, in a loop.",
    "sqs_broker.W004": "Visibility timeout shorter than a task time limit: a task (or the "
    "prefetched messages behind it) can outlive it and run twice.",
    "sqs_broker.I003": "visibility_timeout is set but every queue is predefined: kombu "
    "creates no queue, so the queue's own VisibilityTimeout rules.",
    "sqs_broker.E007": "An amqp or rpc result backend with SQS: one queue per task, never "
    "collected.",
    "sqs_broker.W005": "worker_soft_shutdown_timeout is 0 with a long visibility timeout: "
    "after a cold shutdown unacknowledged messages wait out the whole timeout.",
    "sqs_broker.W006": "Task events are on: SQS does not carry Celery events (celery "
    "events, Flower show nothing) and each listener leaves a celeryev queue.",
    "sqs_broker.W007": "Remote control is on without SNS fanout (kombu's own transport, or "
    "supports_fanout off): workers start no mailbox, celery inspect and control get no answer.",
    # --- offline: predefined queues
    "sqs_broker.E008": "A Celery queue's SQS name (prefix + sanitised name) is missing from "
    "predefined_queues: the worker stops with UndefinedQueueException.",
    "sqs_broker.W008": "A predefined queue's key is not the SQS name of any Celery queue the "
    "app declares: kombu never looks it up.",
    "sqs_broker.E009": "A backoff policy kombu can never find: queues are looked up by prefix "
    "+ sanitised name, backoff policies by the raw routing key, so a prefix or a rewritten "
    "character silently disables the policy.",
    "sqs_broker.E010": "A predefined queue's name and URL disagree on .fifo.",
    "sqs_broker.E011": "A predefined queue's URL names a region other than the one its "
    "client signs for.",
    "sqs_broker.E012": "A predefined queue's AWS URL has a malformed account id (12 digits).",
    # --- offline: backoff policies
    "sqs_broker.W009": "Backoff policy keys are not 1..n consecutive: the missing attempts "
    "fall back to the queue's visibility timeout.",
    "sqs_broker.E013": "A backoff delay outside 0-43200 s: ChangeMessageVisibility rejects it.",
    "sqs_broker.E023": "Backoff policy keys that are not integers: kombu looks the policy up "
    "by the integer ApproximateReceiveCount, so string keys never match.",
    "sqs_broker.W010": "A backoff_tasks name is not a task registered in the Celery app.",
    "sqs_broker.W011": "A backoff policy that can never apply to a task: kombu applies it "
    "only when the message is rejected (acks_late and not acks_on_failure_or_timeout).",
    # --- offline: STS
    "sqs_broker.E014": "sts_token_timeout outside 900-43200: AssumeRole rejects it.",
    "sqs_broker.W013": "sts_token_buffer_time >= sts_token_timeout: kombu ignores the buffer.",
    "sqs_broker.W014": "sts_role_arn without predefined queues: kombu uses the role only for "
    "predefined queues.",
    "sqs_broker.W019": "sts_role_arn with keys in the URL or a custom endpoint: kombu calls "
    "AssumeRole with boto3's default session, which ignores both.",
    # --- offline: names and the runtime
    "sqs_broker.W015": "kombu rewrites a queue name ('.' to '-', other punctuation to '_'): "
    "the SQS queue is called something else than the Celery queue.",
    "sqs_broker.E015": "A queue name SQS rejects: over 80 characters or characters other "
    "than letters, digits, '-' and '_'.",
    "sqs_broker.E016": "pycurl is not importable: kombu's asynchronous SQS poller needs it "
    "and the worker fails at start.",
    "sqs_broker.I004": "A FIFO queue: tasks published without a MessageGroupId all share "
    "the group 'default' and run one at a time.",
    # --- offline: the project's servers
    "sqs_broker.E024": "SQS_BROKER_API_TOKEN is shorter than 16 characters (or not a string): "
    "stats.json and metrics would answer 500 on every request.",
    "sqs_broker.W020": "WSGI_APPLICATION or ASGI_APPLICATION uses Django's own "
    "get_wsgi_application/get_asgi_application: the server starts despite E001.",
    # --- online: reaching SQS
    "sqs_broker.E017": "The SQS/STS endpoint cannot be reached, or does not answer as SQS "
    "(nothing else was checked).",
    "sqs_broker.E018": "The credentials are missing or rejected (nothing else was checked).",
    "sqs_broker.E019": "Access denied, naming the action the credentials may not perform.",
    "sqs_broker.E020": "AssumeRole of sts_role_arn fails (other than access denied).",
    "sqs_broker.I005": "Whom the credentials resolve to (STS GetCallerIdentity).",
    "sqs_broker.I009": "The endpoint does not answer STS GetCallerIdentity: identity not "
    "confirmed.",
    # --- online: queues
    "sqs_broker.I006": "A declared queue does not exist yet: kombu creates it on first use.",
    "sqs_broker.E021": "A predefined queue does not exist: kombu never creates those.",
    "sqs_broker.W016": "A queue's VisibilityTimeout differs from the configured one: kombu "
    "sets it only when it creates the queue.",
    "sqs_broker.I007": "A queue's ReceiveMessageWaitTimeSeconds is 0: kombu long-polls "
    "anyway, but every other consumer short-polls.",
    "sqs_broker.I008": "A FIFO queue's ContentBasedDeduplication has no effect on Celery "
    "messages: kombu sends a random MessageDeduplicationId.",
    "sqs_broker.E022": "A RedrivePolicy names a dead-letter queue that does not exist.",
    "sqs_broker.W012": "A backoff policy with more attempts than the dead-letter queue's "
    "maxReceiveCount lets happen.",
    "sqs_broker.W017": "Leftover remote-control or celeryev queues: mailboxes of lost workers, "
    "idle reply queues, or queues of events, which SQS does not serve.",
    "sqs_broker.W018": "A queue's attributes could not be read.",
    # --- online: remote control's SNS topic
    "sqs_broker.E040": "Remote control is on but SNS refuses the calls on the pidbox topic: "
    "workers cannot create, publish to or subscribe to it, and nothing answers.",
    "sqs_broker.W040": "The pidbox topic's policy lets another account (or anyone, without a "
    "condition) publish: a remote-control command from outside reaches every worker.",
    # --- measured: telemetry and dead-letter samples
    "sqs_broker.W030": "A task's observed maximum run time reaches its queue's visibility "
    "timeout without a visibility lease: it runs twice and is dead-lettered though it succeeded.",
    "sqs_broker.W031": "A task redelivered often while rarely failing: its messages come back "
    "although the work succeeds.",
    "sqs_broker.W032": "A dead-letter queue filling with tasks whose stored result is SUCCESS.",
    # --- message sizes and large messages offloaded to S3
    "sqs_broker.W021": "A queue's MaximumMessageSize is below SQS's 1 MiB: task messages over "
    "it are refused at publish (or offloaded to S3, with a bucket).",
    "sqs_broker.W022": "SQS_BROKER_LARGE_PAYLOAD_BUCKET is set but the workers use kombu's "
    "transport, which cannot read a message stored in S3.",
    "sqs_broker.E025": "The large-payload bucket does not exist, or one of the S3 calls "
    "offloading needs fails (HeadBucket, PutObject, GetObject, DeleteObject: a small object is "
    "written, read and deleted to check).",
    "sqs_broker.W023": "The large-payload bucket is in another region than the queues.",
    "sqs_broker.W024": "The large-payload bucket has no lifecycle rule expiring the prefix: "
    "objects whose messages were dead-lettered, purged or never acknowledged stay until swept.",
    "sqs_broker.W025": "Stored message bodies older than any message can be (28 days) are left "
    "in the bucket.",
}

#: Findings that mean "could not check": ``sqs_check`` exits 2 on them.
UNCHECKABLE = frozenset({"sqs_broker.E017", "sqs_broker.E018"})
