"""One translation of botocore errors into `sluice.exceptions`, shared by the AWS adapters.

Adapters never leak botocore types (ports.py). Each adapter handles the codes that mean
something for its operation (a missing queue is `NotFound`) and hands the rest to
`translate_aws_error`, which keeps the same mapping everywhere:

* a lost compare-and-set (`ConditionalCheckFailedException`, a transaction cancelled by a
  failed condition or a concurrent transaction) is `Conflict`;
* AWS pushing back (throttling, request limits) is `Throttled`;
* anything else that went wrong on the service side, or on the way to it, is
  `ServiceUnavailable`: the caller retries later, the API answers 503.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from sluice.exceptions import Conflict, PayloadTooLarge, ServiceUnavailable, SluiceError, Throttled

#: Error codes with which AWS says "slow down" (DynamoDB, SQS, CloudWatch Logs spellings).
THROTTLING_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottlingError",  # a TransactionCanceledException reason
        "ProvisionedThroughputExceeded",  # a TransactionCanceledException reason
        "RequestLimitExceeded",
        "RequestThrottled",
        "LimitExceededException",
        "AWS.SimpleQueueService.RequestThrottled",
    }
)
#: Cancellation reasons of TransactWriteItems that mean "the compare-and-set lost":
#: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
CONFLICT_CANCELLATION_CODES = frozenset({"ConditionalCheckFailed", "TransactionConflict"})
#: How long to tell callers to wait after AWS throttled us (seconds; the API's Retry-After).
THROTTLED_RETRY_AFTER_SECONDS = 1.0


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def cancellation_codes(error: ClientError) -> list[str]:
    """Per-item reason codes of a TransactionCanceledException ("None" for items that passed)."""
    reasons = error.response.get("CancellationReasons") or []
    return [str(reason.get("Code") or "None") for reason in reasons]


def translate_aws_error(error: Exception, operation: str) -> SluiceError:
    """The `sluice.exceptions` error for a botocore error raised by `operation`."""
    if isinstance(error, SluiceError):
        return error
    if not isinstance(error, ClientError):
        # Connection errors, timeouts, credential problems: nothing the caller did.
        return ServiceUnavailable(f"{operation}: AWS is unreachable ({type(error).__name__})")
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", ""))
    details = {"operation": operation, "aws_error": code}
    if code == "ConditionalCheckFailedException":
        return Conflict(f"{operation}: the item changed concurrently", details=details)
    if code == "TransactionCanceledException":
        reasons = cancellation_codes(error)
        details["reasons"] = reasons
        if any(reason in CONFLICT_CANCELLATION_CODES for reason in reasons):
            return Conflict(f"{operation}: the items changed concurrently", details=details)
        if any(reason in THROTTLING_ERROR_CODES for reason in reasons):
            return Throttled(f"{operation}: DynamoDB throttled the transaction",
                             retry_after=THROTTLED_RETRY_AFTER_SECONDS, details=details)
        return ServiceUnavailable(f"{operation}: the transaction was cancelled", details=details)
    if code == "TransactionConflictException":
        return Conflict(f"{operation}: a concurrent transaction holds the item", details=details)
    if code in THROTTLING_ERROR_CODES:
        return Throttled(f"{operation}: AWS throttled the request",
                         retry_after=THROTTLED_RETRY_AFTER_SECONDS, details=details)
    if code == "ValidationException" and "size" in message.lower():
        # The API checks sizes against named limits first; this is the backstop.
        return PayloadTooLarge(f"{operation}: the item is too large ({message})", details=details)
    return ServiceUnavailable(f"{operation}: AWS refused the request ({code})", details=details)


@contextmanager
def aws_errors(operation: str) -> Iterator[None]:
    """Re-raise any botocore error inside the block as its `sluice.exceptions` equivalent."""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise translate_aws_error(error, operation) from error
