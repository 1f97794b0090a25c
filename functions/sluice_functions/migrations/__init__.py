"""Migrations of stored data from one layout version to the next (`config.SCHEMA_VERSION`).

Steps are code (`steps.MIGRATIONS`, ordered); a runner applies the pending ones to one backend:
`dynamo.DynamoMigrationBackend` (page by page with a checkpoint in the table's META item,
conditional writes) or `sqlite.SqliteMigrationBackend` (`PRAGMA user_version`). `runner.migrate`
is idempotent and resumable. `guard.SchemaGuard` keeps code off data newer than it understands.
Importing this package imports neither boto3 nor the models (the CDK app reads `status`).
"""

from .status import SchemaStatus, check_understood

__all__ = ["SchemaStatus", "check_understood"]
