"""Adapters of the control-plane ports: AWS (DynamoDB, SQS, CloudWatch) and SQLite (embedded)."""
