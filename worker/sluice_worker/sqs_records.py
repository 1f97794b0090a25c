"""What a function fed by an SQS event source mapping does to a record it leaves failed."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("sluice.worker")

#: How soon a record a function could not handle yet comes back (rather than after the queue's
#: visibility timeout, which pool constructs set to 6x the function's timeout, as AWS asks for
#: event source mappings: 90 minutes for a Lambda pool).
RETRY_SECONDS = 30


def show_again_in(sqs: Any, queue_arn: str, receipt_handle: str, seconds: int) -> None:
    """Make a failed record visible again after `seconds`; best effort (without it, it shows
    after the queue's visibility timeout)."""
    if sqs is None:
        return
    try:
        _, _, _, _, account, name = queue_arn.split(":", 5)
        url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
        sqs.change_message_visibility(QueueUrl=url["QueueUrl"], ReceiptHandle=receipt_handle,
                                      VisibilityTimeout=seconds)
    except Exception as exc:  # noqa: BLE001 - only the delay of the retry depends on it
        log.warning("could not shorten the retry of a record of %s: %s", queue_arn, exc)
