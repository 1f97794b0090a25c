"""Cold start of the API function: handler import + first request, with and without bytecode.

Lambda's /var/task is read-only, so an asset without `.pyc` files compiles every module on every
cold start; the asset ships bytecode compiled for the runtime's Python (`sluice_infra.asset`).
This measures what that saves, on this machine's Python (the real asset's bytecode and
pydantic-core are for the Lambda runtime's Python and arm64, so they cannot be imported here):
the asset's layout is rebuilt for this interpreter - the Lambda requirements installed by pip,
then the `sluice` and `sluice_functions` sources - once without bytecode and once compiled as
the asset is (`compileall -j0`, unchecked-hash).

Each sample is a fresh interpreter (as a cold start is): it starts moto (DynamoDB, Logs,
EventBridge; imported before the clock, as boto3 is part of the runtime), then times
`import sluice_functions.handlers.api` and the first request (POST /flow-runs: settings,
adapters, the app, one DynamoDB write). p50 of `--samples` each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from _common import machine, median, record  # noqa: E402

from sluice_functions.config import table_key_schema  # noqa: E402
from sluice_infra import asset  # noqa: E402

TABLE, LOG_GROUP = "sluice-cold-start", "/sluice-cold-start/flow-runs"

SAMPLE = r"""
import json, os, sys, time
import boto3, moto
mock = moto.mock_aws(); mock.start()
boto3.client("dynamodb").create_table(TableName=os.environ["SLUICE_TABLE_NAME"],
                                      **json.loads(os.environ["BENCH_KEY_SCHEMA"]))
boto3.client("logs").create_log_group(logGroupName=os.environ["SLUICE_RUN_LOG_GROUP"])

class Context:
    function_name, memory_limit_in_mb, aws_request_id = "api", 512, "cold-start"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"
    def get_remaining_time_in_millis(self): return 20000

event = {"version": "2.0", "routeKey": "$default", "rawPath": "/flow-runs",
         "rawQueryString": "", "headers": {"content-type": "application/json"},
         "requestContext": {"accountId": "123456789012", "apiId": "api", "stage": "$default",
                            "http": {"method": "POST", "path": "/flow-runs",
                                     "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1",
                                     "userAgent": "bench"},
                            "requestId": "r1", "routeKey": "$default",
                            "time": "01/May/2024:12:00:00 +0000", "timeEpoch": 0},
         "body": json.dumps({"flow_name": "cold"}), "isBase64Encoded": False}
start = time.perf_counter()
from sluice_functions.handlers import api
imported = time.perf_counter()
answer = api.handler(event, Context())
served = time.perf_counter()
assert answer["statusCode"] == 201, answer
assert api.__file__.startswith(os.environ["BENCH_ASSET"]), api.__file__
print(json.dumps({"import_s": imported - start, "first_request_s": served - imported}))
"""


def local_asset(root: Path) -> Path:
    """The asset's layout for this interpreter, without bytecode (dependencies cached)."""
    key = f"bench-{sys.implementation.cache_tag}-{asset.dependencies_key()[:16]}"
    deps = asset.cache_root() / key
    if not (deps / ".complete").exists():
        building = Path(tempfile.mkdtemp(dir=asset.cache_root()))
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
                        "--disable-pip-version-check", "--target", str(building),
                        "-r", str(asset.REQUIREMENTS_FILE)], check=True)
        (building / ".complete").write_text("")
        shutil.rmtree(deps, ignore_errors=True)
        building.rename(deps)
    target = root / "plain"
    shutil.copytree(deps, target, ignore=shutil.ignore_patterns(".complete", "__pycache__"))
    for package in asset.SOURCE_PACKAGES:
        for name, path in asset.source_files(package):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / name)
    return target


def sample(directory: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(directory), "PYTHONDONTWRITEBYTECODE": "1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "SLUICE_TABLE_NAME": TABLE,
           "SLUICE_RUN_LOG_GROUP": LOG_GROUP, "BENCH_ASSET": str(directory),
           "BENCH_KEY_SCHEMA": json.dumps(table_key_schema()),
           "POWERTOOLS_LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-c", SAMPLE], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"sample failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = local_asset(Path(tmp))
        compiled = Path(tmp) / "compiled"
        shutil.copytree(plain, compiled)
        asset.compile_bytecode(compiled, sys.executable)
        print(f"API cold start (import + first request, p50 of {args.samples}) on {machine()}")
        figures = {}
        for label, directory in (("without .pyc", plain), ("with .pyc", compiled)):
            runs = [sample(directory) for _ in range(args.samples)]
            imports = median([r["import_s"] for r in runs]) * 1000
            first = median([r["first_request_s"] for r in runs]) * 1000
            figures[label] = {"import_ms": round(imports, 1),
                              "first_request_ms": round(first, 1),
                              "total_ms": round(imports + first, 1)}
            print(f"{label:<14} import {imports:7.1f} ms   first request {first:7.1f} ms   "
                  f"total {imports + first:7.1f} ms")
    record("cold_start_ms", figures)


if __name__ == "__main__":
    main()
