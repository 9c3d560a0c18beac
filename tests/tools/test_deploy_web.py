"""`make deploy-web`: the pages reach the stack's web bucket (the local stack's, created from
template.yaml in moto) with their content types, each page gets its config.json, pages that are gone
are removed, and the distribution is invalidated."""

from __future__ import annotations

import json
import uuid

from marketplace_local.static import WEB_ROOT
from tools import deploy_web


def distribution(stack) -> str:
    origin = f"{stack.physical_id('WebBucket')}.s3.amazonaws.com"
    config = {
        "CallerReference": uuid.uuid4().hex, "Comment": "test", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "web", "DomainName": origin, "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "web", "ViewerProtocolPolicy": "redirect-to-https",
                                 "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"},
    }  # fmt: skip
    return stack.client("cloudfront").create_distribution(DistributionConfig=config)["Distribution"]["Id"]


def test_the_pages_are_published_to_the_web_bucket_and_the_distribution_is_invalidated(stack, capsys):
    s3, bucket = stack.client("s3"), stack.physical_id("WebBucket")
    s3.put_object(Bucket=bucket, Key="console/old-page.js", Body=b"gone")
    distribution_id = distribution(stack)

    code = deploy_web.main(
        ["--bucket", bucket, "--distribution-id", distribution_id, "--endpoint-url", stack.moto_endpoint,
         "--region", "us-east-1"]
    )  # fmt: skip
    assert code == 0
    assert f"to s3://{bucket}/, deleted 1, invalidation " in capsys.readouterr().out

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    pages = {p.relative_to(WEB_ROOT).as_posix() for p in WEB_ROOT.rglob("*") if p.is_file()}
    assert keys == pages | {"console/config.json", "portal/config.json"}
    index = s3.get_object(Bucket=bucket, Key="console/index.html")
    assert (index["ContentType"], index["CacheControl"]) == ("text/html; charset=utf-8", "no-cache")
    assert index["Body"].read() == (WEB_ROOT / "console" / "index.html").read_bytes()
    assert (
        s3.head_object(Bucket=bucket, Key="shared/api.js")["ContentType"] == "text/javascript; charset=utf-8"
    )
    assert s3.head_object(Bucket=bucket, Key="shared/style.css")["ContentType"] == "text/css; charset=utf-8"
    for site in ("console", "portal"):
        config = s3.get_object(Bucket=bucket, Key=f"{site}/config.json")["Body"].read()
        assert json.loads(config) == {"apiBaseUrl": "/api"}

    invalidations = stack.client("cloudfront").list_invalidations(DistributionId=distribution_id)
    assert invalidations["InvalidationList"]["Quantity"] == 1


def test_it_needs_a_stack_or_a_bucket(capsys):
    try:
        deploy_web.main([])
    except SystemExit as exit:
        assert exit.code == 2
    else:
        raise AssertionError("no error without --stack-name or --bucket")
    assert "give --stack-name, or --bucket" in capsys.readouterr().err
