"""AWS adapters of the control-plane ports: DynamoDB, SQS, CloudWatch Logs, EMF metrics.

Importing this package imports boto3/botocore; the composition root does it only in AWS.
"""

from .clients import AwsClients, build_aws_ports, build_aws_clients
from .dynamo_store import DynamoRunStore
from .emf_metrics import EmfMetrics
from .log_sink import CloudWatchLogSink
from .sqs_queue import SqsRunQueue

__all__ = [
    "AwsClients", "build_aws_clients", "build_aws_ports",
    "DynamoRunStore", "SqsRunQueue", "CloudWatchLogSink", "EmfMetrics",
]
