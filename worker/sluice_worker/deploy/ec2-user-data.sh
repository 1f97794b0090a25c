#!/bin/bash
# EC2 user data for a Sluice worker (Amazon Linux 2023 or Ubuntu). The instance role needs the
# stack's worker managed policy (output WorkerPolicyArn); no inbound ports are opened.
# Set by the CDK worker fleet (or edit by hand): SLUICE_STACK, SLUICE_POOL, SLUICE_LIMIT, and what
# to install, one of:
#   SLUICE_WHEEL_S3_URL, SLUICE_WHEEL_FILE, SLUICE_WHEEL_SHA256: the exact wheel the CDK app built
#     and shipped as an asset. It is downloaded with the instance role (`aws s3 cp`, which Amazon
#     Linux ships), checked against the SHA-256 written here, and installed as `<wheel>[worker]`:
#     only its dependencies (boto3, pydantic, ...) come from the package index.
#   SLUICE_REQUIREMENT: a pip requirement, e.g. "sluice-flows[worker]==0.1.0" from your own index.
#     Never plain "sluice": that name on PyPI is an unrelated project.
# SLUICE_POWER_OFF_ON_FAILURE=true (the CDK fleet sets it) powers the instance off when any step
# fails, so that it never sits in its group as a worker that runs nothing; the fleet's launch
# template turns that into a termination and the group launches a replacement. The failing
# step is in the console output (`aws ec2 get-console-output`).
# SLUICE_INSTALL_DIR (default /opt/sluice, where the systemd unit looks) holds the virtualenv.
set -euo pipefail

bootstrap_finished() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    echo "sluice: worker bootstrap failed (exit status $status)" >&2
    if [ "${SLUICE_POWER_OFF_ON_FAILURE:-false}" = true ]; then
      echo "sluice: powering off so that the Auto Scaling group replaces this instance" >&2
      shutdown -h now
    fi
  fi
}
trap bootstrap_finished EXIT

SLUICE_STACK="${SLUICE_STACK:-Sluice}"
SLUICE_POOL="${SLUICE_POOL:-default}"
SLUICE_LIMIT="${SLUICE_LIMIT:-4}"
SLUICE_WHEEL_S3_URL="${SLUICE_WHEEL_S3_URL:-}"
SLUICE_WHEEL_FILE="${SLUICE_WHEEL_FILE:-}"
SLUICE_WHEEL_SHA256="${SLUICE_WHEEL_SHA256:-}"
SLUICE_REQUIREMENT="${SLUICE_REQUIREMENT:-}"
SLUICE_INSTALL_DIR="${SLUICE_INSTALL_DIR:-/opt/sluice}"
VENV="$SLUICE_INSTALL_DIR/venv"
IMDS=http://169.254.169.254/latest
IMDS_TOKEN="$(curl -sf -X PUT "$IMDS/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')"
REGION="$(curl -sf -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "$IMDS/meta-data/placement/region")"

if command -v dnf >/dev/null; then dnf install -y python3.11 python3.11-pip git; PY=python3.11;
else apt-get update && apt-get install -y python3 python3-venv git; PY=python3; fi

id sluice >/dev/null 2>&1 || useradd --system --home /var/lib/sluice --create-home sluice
mkdir -p "$SLUICE_INSTALL_DIR"
$PY -m venv "$VENV"
if [ -n "$SLUICE_WHEEL_S3_URL" ]; then
  case "$SLUICE_WHEEL_FILE" in
    *.whl) ;;
    *) echo "sluice: SLUICE_WHEEL_FILE must be the wheel's file name (*.whl)" >&2; exit 1 ;;
  esac
  if [ -z "$SLUICE_WHEEL_SHA256" ]; then
    echo "sluice: SLUICE_WHEEL_SHA256 is required with SLUICE_WHEEL_S3_URL" >&2; exit 1
  fi
  wheel="$SLUICE_INSTALL_DIR/$(basename "$SLUICE_WHEEL_FILE")"
  aws s3 cp --only-show-errors --region "$REGION" "$SLUICE_WHEEL_S3_URL" "$wheel"
  # The wheel is installed only if it is byte for byte the one the CDK app built.
  echo "$SLUICE_WHEEL_SHA256  $wheel" | sha256sum --check --strict -
  "$VENV/bin/pip" install --quiet "$wheel[worker]"
elif [ -n "$SLUICE_REQUIREMENT" ]; then
  "$VENV/bin/pip" install --quiet "$SLUICE_REQUIREMENT"
else
  echo "sluice: nothing to install: set SLUICE_WHEEL_S3_URL, SLUICE_WHEEL_FILE and" \
       "SLUICE_WHEEL_SHA256 (the CDK fleet does), or SLUICE_REQUIREMENT" \
       "(e.g. 'sluice-flows[worker]==0.1.0' from your index)" >&2
  exit 1
fi
# The worker and its extra import: a broken install stops here, not in a restarting unit.
"$VENV/bin/python" -c "import boto3, sluice_worker.worker"

# The profile points the worker at the stack (read from its CloudFormation outputs).
sudo -u sluice env SLUICE_HOME=/var/lib/sluice AWS_REGION="$REGION" \
  "$VENV/bin/sluice" profile create aws --stack "$SLUICE_STACK" --region "$REGION" --use

mkdir -p /etc/sluice
cat > /etc/sluice/worker.env <<ENV
SLUICE_POOL=$SLUICE_POOL
SLUICE_LIMIT=$SLUICE_LIMIT
AWS_REGION=$REGION
ENV
install -m 0644 "$VENV"/lib/python*/site-packages/sluice_worker/deploy/sluice-worker.service \
  /etc/systemd/system/sluice-worker.service
systemctl daemon-reload
systemctl enable --now sluice-worker
