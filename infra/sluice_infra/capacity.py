"""How much load the control plane takes: the API stage's throttle, each function's memory and
the reserved concurrency of the functions, as one option of the construct (`Capacity`).

The defaults are sized for 1,000 concurrent flow runs (README, "Capacity"). The API's steady
request rate, per second, for N concurrent runs over W workers:

    rate = W / heartbeat_interval                  per-worker heartbeats (one request per worker)
         + N * chatty_share / report_interval      task-run / log batches of runs with output
         + N * requests_per_run / run_seconds      claim, state changes, enqueue
         + pollers / poll_interval                 run_deployment parents and `--watch`
         + console_rate                            people looking at the console

`api_requests_per_second` computes it; the default throttle keeps twice that for 1,000 runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .http_api import Throttle

#: Lambda function memory: 128 MB to 10,240 MB (Lambda quotas, "Function memory").
LAMBDA_MIN_MEMORY_MB = 128
LAMBDA_MAX_MEMORY_MB = 10_240
#: The default concurrent executions of an account and region (Lambda quotas, "Concurrent
#: executions"); raise it with a quota request and tell the construct (`account_concurrency`).
DEFAULT_ACCOUNT_CONCURRENCY = 1_000
#: Lambda keeps at least 100 executions unreserved for the account's other functions
#: (Lambda quotas: "UnreservedConcurrentExecution" cannot go below 100).
MIN_UNRESERVED_CONCURRENCY = 100
#: API Gateway's account-level throttle per region: 10,000 requests/s, burst 5,000 (API
#: Gateway quotas, "Throttle quota per account, per Region across HTTP APIs").
API_GATEWAY_ACCOUNT_RATE = 10_000
API_GATEWAY_ACCOUNT_BURST = 5_000

#: The terms of the sizing formula (module docstring), for 1,000 concurrent runs.
HEARTBEAT_INTERVAL_SECONDS = 30    # one heartbeat per worker per interval (per-worker leases)
REPORT_INTERVAL_SECONDS = 0.5      # the run reporter's flush interval (sluice.client.reporter)
CHATTY_SHARE = 0.1                 # share of runs with new task runs or logs in a half second
REQUESTS_PER_RUN = 6               # create/enqueue, claim, Running, final state, a log/event tail
RUN_SECONDS = 600                  # a typical run: ten minutes
POLL_INTERVAL_SECONDS = 5          # run_deployment's backed-off poll interval, at its ceiling
POLLER_SHARE = 0.1                 # share of runs that are parents waiting on a child
CONSOLE_REQUESTS_PER_SECOND = 5    # a few people with the console open
HEADROOM = 2                       # the throttle keeps twice the steady rate for bursts


def api_requests_per_second(runs: int, workers: int, *,
                            heartbeat_interval: float = HEARTBEAT_INTERVAL_SECONDS,
                            report_interval: float = REPORT_INTERVAL_SECONDS,
                            chatty_share: float = CHATTY_SHARE,
                            requests_per_run: float = REQUESTS_PER_RUN,
                            run_seconds: float = RUN_SECONDS,
                            poll_interval: float = POLL_INTERVAL_SECONDS,
                            poller_share: float = POLLER_SHARE,
                            console_rate: float = CONSOLE_REQUESTS_PER_SECOND) -> float:
    """The API's steady request rate for `runs` concurrent runs over `workers` workers (the
    formula of the module docstring). A run reports at most 1/report_interval batches a
    second, so `chatty_share=1` is the upper bound."""
    return (workers / heartbeat_interval
            + runs * chatty_share / report_interval
            + runs * requests_per_run / run_seconds
            + runs * poller_share / poll_interval
            + console_rate)


class CapacityError(ValueError):
    """A capacity option out of range; `option` names it (the app maps it to its context key)."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option} {problem}")
        self.option = option
        self.problem = problem


@dataclass(frozen=True)
class Capacity:
    """The control plane's capacity options (defaults: 1,000 concurrent runs; README).

    :param api_throttle_rate: the API stage's steady requests per second.
    :param api_throttle_burst: requests the stage accepts at once above the rate.
    :param api_memory_mb / scheduler_memory_mb / monitor_memory_mb: each function's memory
        (Lambda gives CPU in proportion).
    :param api_reserved_concurrency: executions reserved for (and the ceiling of) the API
        function; None: it shares the account's unreserved pool.
    :param scheduler_reserved_concurrency / monitor_reserved_concurrency: executions reserved
        for the ticks, so a burst of API requests can never starve them (and a slow tick never
        piles up more than this many).
    :param account_concurrency: the account's concurrent executions quota in the region; the
        reservations must leave `MIN_UNRESERVED_CONCURRENCY` of it.
    """

    # HEADROOM x api_requests_per_second(1_000, 250) (1,000 runs, 4 per worker: ~243/s).
    api_throttle_rate: int = Throttle.rate_per_second
    api_throttle_burst: int = Throttle.burst
    api_memory_mb: int = 512
    scheduler_memory_mb: int = 512
    monitor_memory_mb: int = 512
    api_reserved_concurrency: int | None = None
    scheduler_reserved_concurrency: int | None = 2
    monitor_reserved_concurrency: int | None = 2
    account_concurrency: int = DEFAULT_ACCOUNT_CONCURRENCY

    def __post_init__(self) -> None:
        _whole("api_throttle_rate", self.api_throttle_rate, 1, API_GATEWAY_ACCOUNT_RATE,
               "(API Gateway's account limit per region)")
        _whole("api_throttle_burst", self.api_throttle_burst, 1, API_GATEWAY_ACCOUNT_BURST,
               "(API Gateway's account limit per region)")
        for name in ("api", "scheduler", "monitor"):
            _whole(f"{name}_memory_mb", getattr(self, f"{name}_memory_mb"),
                   LAMBDA_MIN_MEMORY_MB, LAMBDA_MAX_MEMORY_MB, "(Lambda's memory range)")
        _whole("account_concurrency", self.account_concurrency,
               MIN_UNRESERVED_CONCURRENCY, None, "(Lambda keeps 100 executions unreserved)")
        for name in ("api", "scheduler", "monitor"):
            reserved = getattr(self, f"{name}_reserved_concurrency")
            if reserved is not None:
                # 0 would stop the function altogether: refused, leave it unset instead.
                _whole(f"{name}_reserved_concurrency", reserved, 1, None,
                       "(leave it unset to share the account's pool)")
        spare = self.account_concurrency - MIN_UNRESERVED_CONCURRENCY
        if self.reserved_total > spare:
            raise CapacityError(
                "api_reserved_concurrency", f"and the ticks' reservations add up to "
                f"{self.reserved_total}, more than the {spare} an account of "
                f"{self.account_concurrency} concurrent executions can reserve (Lambda keeps "
                f"{MIN_UNRESERVED_CONCURRENCY} unreserved); lower them, or raise the account's "
                "quota and set account_concurrency to it")

    @property
    def throttle(self) -> Throttle:
        """The API stage's throttle."""
        return Throttle(rate_per_second=self.api_throttle_rate, burst=self.api_throttle_burst)

    @property
    def reserved_total(self) -> int:
        """Executions the three functions reserve together."""
        return sum(value or 0 for value in (self.api_reserved_concurrency,
                                            self.scheduler_reserved_concurrency,
                                            self.monitor_reserved_concurrency))

    def memory_mb(self, function: str) -> int:
        """The memory of function "api", "scheduler" or "monitor"."""
        return int(getattr(self, f"{function}_memory_mb"))

    def reserved_concurrency(self, function: str) -> int | None:
        """The reserved concurrency of function "api", "scheduler" or "monitor" (None: none)."""
        return getattr(self, f"{function}_reserved_concurrency")


def _whole(option: str, value: object, low: int, high: int | None, why: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CapacityError(option, f"must be a whole number, not {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise CapacityError(option, f"must be {bounds} {why}, not {value}")
