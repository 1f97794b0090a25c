#!/bin/bash
# EC2 user data for a Sluice worker (Amazon Linux 2023 or Ubuntu). The instance role needs the
# stack's worker managed policy (output WorkerPolicyArn); no inbound ports are opened.
# Set by the CDK worker fleet (or edit by hand): SLUICE_STACK, SLUICE_POOL, SLUICE_LIMIT,
# SLUICE_VERSION (a pip requirement, e.g. "sluice[worker]==0.1.0").
set -euo pipefail
SLUICE_STACK="${SLUICE_STACK:-Sluice}"
SLUICE_POOL="${SLUICE_POOL:-default}"
SLUICE_LIMIT="${SLUICE_LIMIT:-4}"
SLUICE_VERSION="${SLUICE_VERSION:-sluice[worker]}"
REGION="$(curl -s -H "X-aws-ec2-metadata-token: $(curl -s -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')" http://169.254.169.254/latest/meta-data/placement/region)"

if command -v dnf >/dev/null; then dnf install -y python3.11 python3.11-pip git; PY=python3.11;
else apt-get update && apt-get install -y python3 python3-venv git; PY=python3; fi

id sluice >/dev/null 2>&1 || useradd --system --home /var/lib/sluice --create-home sluice
$PY -m venv /opt/sluice/venv
/opt/sluice/venv/bin/pip install --quiet "$SLUICE_VERSION"

# The profile points the worker at the stack (read from its CloudFormation outputs).
sudo -u sluice env SLUICE_HOME=/var/lib/sluice AWS_REGION="$REGION" \
  /opt/sluice/venv/bin/sluice profile create aws --stack "$SLUICE_STACK" --region "$REGION" --use

mkdir -p /etc/sluice
cat > /etc/sluice/worker.env <<ENV
SLUICE_POOL=$SLUICE_POOL
SLUICE_LIMIT=$SLUICE_LIMIT
AWS_REGION=$REGION
ENV
install -m 0644 /opt/sluice/venv/lib/python*/site-packages/sluice_worker/deploy/sluice-worker.service \
  /etc/systemd/system/sluice-worker.service
systemctl daemon-reload
systemctl enable --now sluice-worker
