"""Build the boto3 clients and the four AWS adapters from `ControlPlaneSettings`.

The Lambda handlers call `build_aws_ports` once per cold start; tests build clients inside a
moto mock and pass them to the adapters directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from sluice.models import DEFAULT_POOL

from ...config import (
    COMPRESSED_ITEMS_SCHEMA,
    HISTORY_INLINE_SCHEMA,
    LEAN_RUN_DOCUMENT_SCHEMA,
    ControlPlaneSettings,
)
from ...migrations.dynamo import DynamoMigrationBackend
from ...migrations.guard import SchemaGuard
from ...ports import ControlPlanePorts, DiscardEvents, PoolQueue
from .dynamo_automations import DynamoAutomationStore
from .dynamo_store import DynamoRunStore
from .emf_metrics import EmfMetrics
from .event_bridge import EventBridgePublisher
from .event_store import DynamoEventStore
from .log_sink import CloudWatchLogSink
from .s3_bundles import S3BundleStore
from .sqs_queue import SqsRunQueue

#: Inside an API request, fail fast and let the caller retry (the API answers 429/503 with
#: Retry-After) rather than spend the Lambda's time in backoff; "standard" retries throttles.
_API_RETRIES = {"mode": "standard", "max_attempts": 3}
#: SQS long polls last up to 20 s (ports.MAX_WAIT_SECONDS); the read timeout must outlast them.
_SQS_READ_TIMEOUT_SECONDS = 30
_READ_TIMEOUT_SECONDS = 10
_CONNECT_TIMEOUT_SECONDS = 3


@dataclass(frozen=True)
class AwsClients:
    """The boto3 clients the control plane uses (thread-safe; one set per process)."""

    dynamodb: Any
    sqs: Any
    logs: Any
    s3: Any = None
    #: None: events are stored but not put on EventBridge.
    events: Any = None


def build_aws_clients(session: boto3.session.Session | None = None,
                      region_name: str | None = None) -> AwsClients:
    session = session or boto3.session.Session()

    def client(service: str, read_timeout: int) -> Any:
        config = Config(retries=_API_RETRIES, connect_timeout=_CONNECT_TIMEOUT_SECONDS,
                        read_timeout=read_timeout)
        return session.client(service, region_name=region_name, config=config)

    return AwsClients(
        dynamodb=client("dynamodb", _READ_TIMEOUT_SECONDS),
        sqs=client("sqs", _SQS_READ_TIMEOUT_SECONDS),
        logs=client("logs", _READ_TIMEOUT_SECONDS),
        s3=build_s3_client(session, region_name),
        events=client("events", _READ_TIMEOUT_SECONDS),
    )


#: Presigned URLs name the bucket's regional endpoint, virtual-host style
#: (`https://<bucket>.s3.<region>.amazonaws.com`), signed with SigV4. botocore's default for
#: presigning is the global `<bucket>.s3.amazonaws.com`, which answers a bucket created minutes
#: ago outside us-east-1 with a 307 redirect (or 400 for SigV4) until DNS has propagated.
#: https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html
_S3_REGIONAL = {"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"}


def build_s3_client(session: boto3.session.Session, region_name: str | None = None) -> Any:
    """The S3 client of presigned bundle URLs: the regional endpoint in AWS; a configured
    endpoint (AWS_ENDPOINT_URL: moto, LocalStack, MinIO) is used as it is, path style."""
    base = Config(signature_version="s3v4", connect_timeout=_CONNECT_TIMEOUT_SECONDS,
                  read_timeout=_READ_TIMEOUT_SECONDS, retries=_API_RETRIES)
    s3 = session.client("s3", region_name=region_name,
                        config=base.merge(Config(s3=_S3_REGIONAL)))
    if s3.meta.endpoint_url.rstrip("/").endswith(".amazonaws.com"):
        return s3
    return session.client("s3", region_name=region_name,
                          config=base.merge(Config(s3={"addressing_style": "path"})))


def build_aws_ports(settings: ControlPlaneSettings,
                    clients: AwsClients | None = None) -> ControlPlanePorts:
    """The AWS adapters wired from settings (the Lambda composition root's one call)."""
    clients = clients or build_aws_clients()
    known_queues: dict[str, PoolQueue] = {}
    if settings.default_pool_queue_url and settings.default_pool_dlq_url:
        known_queues[DEFAULT_POOL] = PoolQueue(pool=DEFAULT_POOL,
                                               queue_url=settings.default_pool_queue_url,
                                               dlq_url=settings.default_pool_dlq_url)
    schema = SchemaGuard(DynamoMigrationBackend(clients.dynamodb,
                                                settings.table_name).guard_status)
    return ControlPlanePorts(
        store=DynamoRunStore(clients.dynamodb, settings.table_name,
                             retention_days=settings.retention_days,
                             history_inline=lambda: schema.data_version() >= HISTORY_INLINE_SCHEMA,
                             compressed_items=lambda: (schema.data_version()
                                                       >= COMPRESSED_ITEMS_SCHEMA),
                             lean_documents=lambda: (schema.data_version()
                                                     >= LEAN_RUN_DOCUMENT_SCHEMA)),
        queue=SqsRunQueue(clients.sqs, settings.effective_queue_prefix,
                          visibility_timeout_seconds=settings.queue_visibility_timeout_seconds,
                          known_queues=known_queues),
        logs=CloudWatchLogSink(clients.logs, settings.effective_run_log_group),
        metrics=EmfMetrics(settings.effective_metrics_namespace),
        bundles=S3BundleStore(clients.s3, settings.bundle_bucket)
        if settings.bundle_bucket and clients.s3 is not None else None,
        events=DynamoEventStore(clients.dynamodb, settings.table_name,
                                retention_days=settings.event_retention_days),
        publisher=EventBridgePublisher(clients.events, stack_prefix=settings.stack_prefix,
                                       bus_name=settings.event_bus_name)
        if clients.events is not None else DiscardEvents(),
        automations=DynamoAutomationStore(clients.dynamodb, settings.table_name),
        schema=schema,
    )
