"""SQS's limits and the defaults of kombu and of sqs_broker: one home for each number.

Every module that checks, builds or explains a value imports it from here,
so a limit AWS changes is changed once. The limits come from the SQS API
reference (ReceiveMessage, SetQueueAttributes, SendMessage, SendMessageBatch,
CreateQueue) and the STS AssumeRole reference; kombu's defaults from
``kombu/transport/SQS.py``, which applies them when a transport option is unset.
"""

from __future__ import annotations

# --- SQS and STS limits -----------------------------------------------------------

#: ReceiveMessage ``WaitTimeSeconds`` (long polling): 0 to 20.
MAX_WAIT_TIME_SECONDS = 20
#: ``VisibilityTimeout`` and ChangeMessageVisibility: 0 to 43,200 s (12 hours).
MAX_VISIBILITY_TIMEOUT = 43200
#: SendMessage ``DelaySeconds``: at most 900 s (standard queues only).
MAX_DELAY_SECONDS = 900
#: Entries per SendMessageBatch, DeleteMessageBatch and ReceiveMessage.
MAX_BATCH_ENTRIES = 10
#: Characters of a queue name (including ``.fifo``).
MAX_QUEUE_NAME = 80
#: Message attributes per message.
MAX_MESSAGE_ATTRIBUTES = 10
#: A queue's ``MaximumMessageSize`` when it is not read: SQS's default before 2025 (256 KiB).
DEFAULT_MAX_MESSAGE_SIZE = 262144
#: ``MessageRetentionPeriod``: at most 14 days.
MAX_RETENTION_PERIOD = 1209600
#: AssumeRole ``DurationSeconds``: 900 to 43,200 s.
MIN_STS_TOKEN_TIMEOUT = 900
MAX_STS_TOKEN_TIMEOUT = 43200
#: ``MaximumMessageSize``: 1,024 to 1,048,576 bytes (1 MiB, also new queues' default).
MIN_MESSAGE_SIZE = 1024
MAX_MESSAGE_SIZE = 1_048_576
#: ``MessageRetentionPeriod`` of a queue that does not say: 4 days.
DEFAULT_RETENTION_PERIOD = 345_600

# --- kombu's defaults (what applies when a transport option is unset) ------------

#: kombu's ``visibility_timeout`` when the option is unset.
KOMBU_VISIBILITY_TIMEOUT = 1800
#: kombu's ``wait_time_seconds`` when the option is unset.
KOMBU_WAIT_TIME_SECONDS = 10
#: kombu's ``polling_interval`` when the option is unset.
KOMBU_POLLING_INTERVAL = 1
#: kombu's ``sts_token_timeout`` when the option is unset.
KOMBU_STS_TOKEN_TIMEOUT = 900

# --- CloudWatch (the oldest-message age, sqs_broker.sqs) ---------------------------

#: GetMetricData's limit of queries per call.
CLOUDWATCH_MAX_QUERIES = 500
#: Seconds back a pass looks for the latest datapoint: SQS metrics arrive minutes late.
CLOUDWATCH_LOOKBACK = 15 * 60

# --- sqs_broker's defaults (sqs_broker.settings) ---------------------------------

DEFAULT_REGION = "us-east-1"
DEFAULT_VISIBILITY_TIMEOUT = KOMBU_VISIBILITY_TIMEOUT
# Measured in docs/benchmarks.md (python -m benchmarks.run): the longest long
# poll halves idle ReceiveMessage calls against kombu's 10 s, and a 0.1 s pause
# after an empty poll (kombu: 1 s) keeps pickup immediate while bounding a
# short-polling configuration to ten calls a second per queue.
DEFAULT_POLLING_INTERVAL = 0.1
DEFAULT_WAIT_TIME_SECONDS = MAX_WAIT_TIME_SECONDS
DEFAULT_STS_TOKEN_TIMEOUT = MIN_STS_TOKEN_TIMEOUT
# docs/reliability.md, "The visibility lease": a killed worker's messages return
# within 30 s, for one ChangeMessageVisibilityBatch per 10 held messages every
# 10 s (SQS_VISIBILITY_LEASE=0: the queue's visibility timeout, no extension).
DEFAULT_VISIBILITY_LEASE = 30
