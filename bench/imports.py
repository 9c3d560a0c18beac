"""Cold start and validation speed.

1. Import time of each Lambda handler module, the cold-start work that is ours: for every
   AWS::Serverless::Function in template.yaml, a fresh interpreter runs ``python -X importtime -c
   "import <module>"`` in the function's CodeUri, with the shared layer on ``PYTHONPATH`` (as Lambda
   puts /opt/python there), the environment Lambda sets (``AWS_LAMBDA_FUNCTION_NAME`` and friends,
   so Powertools behaves as on Lambda: its Tracer is on and loads the X-Ray SDK) and the variables
   the template gives it (Globals plus the function's own; intrinsics replaced by dummies). One
   warm-up run first (so .pyc files exist), then N measured runs: median, min, max, and the heaviest
   direct imports of the median run.
2. The shared imports every handler pays, each alone in a fresh interpreter (boto3, Powertools,
   the X-Ray SDK, jsonschema): what stands between a handler and the goal.
3. Warm validation of one supplier record: the onboarding Validate step's rules (JSON Schema, then
   tax id format per country, duplicate tax id, contact domain vs website, blocked list) on records
   already read. Its DynamoDB lookups (the record, the tax id claims, the blocked list) are
   excluded: the rules get their results (no duplicate, nothing blocked), as the step passes them.

These run in the local virtual environment on this machine, not on Lambda's arm64.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "shared"
_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( +)(\S+)\s*$")
SHARED_IMPORTS = ("boto3", "aws_lambda_powertools", "aws_xray_sdk.core", "jsonschema")


def summary(values: list[float]) -> dict[str, Any]:
    return {"runs": values, "median": statistics.median(values), "min": min(values), "max": max(values)}


def function_specs(sam: dict[str, Any]) -> list[dict[str, Any]]:
    """Each function's code directory, handler module and environment, from the template."""
    globals_env = (((sam.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get(
        "Variables"
    ) or {}
    specs = []
    for logical_id, resource in sam["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties") or {}
        variables = {**globals_env, **((props.get("Environment") or {}).get("Variables") or {})}
        specs.append(
            {
                "function": logical_id,
                "code_uri": props["CodeUri"],
                "module": props["Handler"].rsplit(".", 1)[0],
                "environment": {name: _dummy(name, value) for name, value in variables.items()},
            }
        )
    return specs


def _dummy(name: str, value: Any) -> str:
    """A literal value from the template as is; an intrinsic (resolved at deploy time) as a dummy
    of the right shape."""
    if isinstance(value, str | int | float | bool):
        return str(value)
    if name.endswith("_ARN"):
        return f"arn:aws:bench:us-east-1:000000000000:{name.lower()}"
    if name.endswith("_URL"):
        return f"https://bench.invalid/000000000000/{name.lower()}"
    return f"bench-{name.lower()}"


def lambda_environment(function: str, extra: dict[str, str], task_root: Path = ROOT) -> dict[str, str]:
    """What Lambda's python3.12 runtime sets, plus the function's own variables.

    ``LAMBDA_TASK_ROOT`` matters: the X-Ray SDK takes it as the sign that it runs in Lambda, and
    only then uses Lambda's trace context and a local sampler. Without it, it builds the centralized
    sampler, which creates two botocore X-Ray clients (about 270 ms here) that Lambda never pays."""
    return {
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(Path.home()),
        "PYTHONPATH": str(LAYER),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "_X_AMZN_TRACE_ID": "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=1",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        **extra,
    }


def import_time_us(module: str, cwd: Path, env: dict[str, str]) -> tuple[int, dict[str, int]]:
    """Cumulative import time, in µs, of ``module`` in a fresh interpreter, and that of each module
    it imports directly (those not already imported by then)."""
    # The command is this interpreter and a module name taken from our own template.
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"`import {module}` in {cwd} failed:\n{tail}")
    direct: dict[str, int] = {}
    for line in result.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if not match:
            continue
        depth = len(match.group(3))  # 1 for the top-level import, 2 more per level of nesting
        if depth == 3:
            direct[match.group(4)] = int(match.group(2))
        elif depth == 1 and match.group(4) == module:
            return int(match.group(2)), direct
        elif depth == 1:
            direct.clear()
    raise RuntimeError(f"no importtime line for the top-level module {module}")


def handler_imports(sam: dict[str, Any], runs: int) -> list[dict[str, Any]]:
    rows = []
    for spec in function_specs(sam):
        cwd = ROOT / spec["code_uri"]
        env = lambda_environment(spec["function"], spec["environment"], task_root=cwd)
        import_time_us(spec["module"], cwd, env)  # warm-up: compiles .pyc, not counted
        samples = [import_time_us(spec["module"], cwd, env) for _ in range(runs)]
        measured = summary([total / 1000 for total, _ in samples])
        _, direct = min(samples, key=lambda sample: abs(sample[0] / 1000 - measured["median"]))
        heaviest = {k: v / 1000 for k, v in sorted(direct.items(), key=lambda item: -item[1])[:5]}
        rows.append(
            {k: spec[k] for k in ("function", "code_uri", "module")}
            | {"import_ms": measured, "heaviest_direct_imports_ms": heaviest}
        )
    return rows


def shared_imports(runs: int) -> dict[str, dict[str, Any]]:
    env = lambda_environment("bench-shared-imports", {})
    out = {}
    for module in SHARED_IMPORTS:
        import_time_us(module, ROOT, env)
        out[module] = summary([import_time_us(module, ROOT, env)[0] / 1000 for _ in range(runs)])
    return out


# ------------------------------------------------------------------ validation speed


def supplier_records(count: int) -> list[dict[str, Any]]:
    """Valid supplier records as the Validate step reads them, each with its own tax id."""
    records = []
    for n in range(count):
        digits = f"{(uuid.uuid4().int + n) % 10**9:09d}"
        records.append({
            "supplierId": str(uuid.uuid4()), "tenantId": "bench", "version": 1, "status": "PENDING_VALIDATION",
            "legalName": f"Acme {n} Ltd", "taxId": f"{digits[:2]}-{digits[2:]}", "country": "US",
            "contactEmail": "ops@acme.com", "website": "https://www.acme.com", "phone": "+1 5551234567",
            "address": {"line1": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"},
        })  # fmt: skip
    return records


def validation_speed(runs: int, records_per_run: int = 2000) -> dict[str, Any]:
    """Per-record time of the Validate step's rules, warm (schema compiled, modules loaded), in this
    process: median/min/max over ``runs`` runs of ``records_per_run`` records each."""
    sys.path.insert(0, str(LAYER))
    from marketplace import blocklist, suppliers

    def validate(record: dict[str, Any]) -> Any:
        # The step's own sequence (suppliers.rules), with the lookups' results given.
        schema_errors = suppliers.schema_check(record)
        blocklist.candidate_keys(record)
        return suppliers.evaluate(record, duplicate_of=[], blocked={}, schema_errors=schema_errors)

    records = supplier_records(records_per_run)
    assert all(validate(r).outcome == "APPROVED" for r in records[:10])  # the records are valid
    per_record_us = []
    for _ in range(runs):
        started = time.perf_counter()
        for record in records:
            validate(record)
        per_record_us.append((time.perf_counter() - started) / len(records) * 1e6)
    per_second = [1e6 / us for us in per_record_us]
    return {
        "per_record_us": summary(per_record_us),
        "records_per_second": summary(per_second),
        "records_per_run": records_per_run,
        "lookups": "excluded: the record, tax id claims and blocked list are given (no duplicate, not blocked)",
    }
