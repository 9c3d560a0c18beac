"""moto's IAM evaluation given each request's real resource (marketplace_local.moto_patches.iam_enforcement,
D50), shown failing on plain moto and passing with the patch (D5), each in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def scenario(mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    done = subprocess.run(
        [sys.executable, "-m", "tests.emulator.iam_scenarios", mode],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_plain_moto_refuses_every_call_of_a_policy_that_names_arns():
    """moto evaluates every request's resource as ``*``: a grant on the table's ARN grants nothing, its
    refusal is the query protocol's XML (boto3 reads the DynamoDB error code as "403"), and a caller
    with keys moto does not know (the operator) is refused too."""
    assert scenario("plain") == {
        "get granted table": "403",
        "put granted table": "403",
        "get other table": "403",
        "transaction update granted": "403",
        "transaction put granted": "403",
        "publish granted topic": "AccessDenied",
        "operator puts": "403",
    }


def test_with_the_patch_a_role_may_do_what_its_policy_grants_on_the_resources_it_names():
    """Granted: GetItem and UpdateItem on one table, Publish on one topic. A transaction's item is
    authorised as its own action (an Update passes, a Put does not); refusals are DynamoDB's
    AccessDeniedException; the operator (plain keys) is never refused."""
    assert scenario("patched") == {
        "get granted table": "ok",
        "put granted table": "AccessDeniedException",
        "get other table": "AccessDeniedException",
        "transaction update granted": "ok",
        "transaction put granted": "AccessDeniedException",
        "publish granted topic": "ok",
        "operator puts": "ok",
    }
