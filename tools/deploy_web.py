"""Publishes the web pages (web/: the admin console and the supplier portal) to a deployed stack:
uploads them to the stack's WebBucket with their content types, removes pages that are gone,
writes each page's config.json (the API is under /api on the distribution's own origin) and
invalidates the distribution. `sam deploy` creates the bucket and the distribution but uploads
nothing; `make deploy-web STACK=<stack name>` runs this after it.

What `aws s3 sync` would do, with boto3 (already a dependency): the content type comes from the
same table the local server uses, so the pages are served the same way on both.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import boto3

from marketplace_local.static import CONTENT_TYPES, SITES, WEB_ROOT

# Pages that are not HTML may be cached by browsers for a while; HTML is always revalidated so a
# new deployment's module URLs are picked up.
CACHE_CONTROL = {".html": "no-cache", ".json": "no-cache"}
DEFAULT_CACHE_CONTROL = "max-age=300"
CONFIG_SITES = ("console", "portal")


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def files_to_publish(web_root: Path = WEB_ROOT) -> dict[str, Path]:
    """Object key -> file, for every servable file of the sites (as the local server serves them)."""
    found = {}
    for site in SITES:
        for path in sorted((web_root / site).rglob("*")):
            relative = path.relative_to(web_root)
            if (
                path.is_file()
                and path.suffix in CONTENT_TYPES
                and not any(p.startswith(".") for p in relative.parts)
            ):
                found[relative.as_posix()] = path
    return found


def publish(
    s3: Any,
    cloudfront: Any,
    bucket: str,
    distribution_id: str | None,
    api_base_url: str = "/api",
    web_root: Path = WEB_ROOT,
) -> dict[str, Any]:
    files = files_to_publish(web_root)
    for key, path in files.items():
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ContentType=CONTENT_TYPES[path.suffix],
            CacheControl=CACHE_CONTROL.get(path.suffix, DEFAULT_CACHE_CONTROL),
        )
    config = json.dumps({"apiBaseUrl": api_base_url}).encode()
    configs = [f"{site}/config.json" for site in CONFIG_SITES]
    for key in configs:
        s3.put_object(
            Bucket=bucket, Key=key, Body=config, ContentType=CONTENT_TYPES[".json"], CacheControl="no-cache"
        )
    keep = set(files) | set(configs)
    stale = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
        if obj["Key"] not in keep
    ]
    for start in range(0, len(stale), 1000):
        s3.delete_objects(
            Bucket=bucket,
            Delete={"Objects": [{"Key": k} for k in stale[start : start + 1000]], "Quiet": True},
        )
    invalidation = None
    if distribution_id:
        invalidation = cloudfront.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": 1, "Items": ["/*"]},
                "CallerReference": str(time.time_ns()),
            },
        )["Invalidation"]["Id"]
    return {"uploaded": sorted(keep), "deleted": stale, "invalidation": invalidation}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.deploy_web", description=__doc__)
    parser.add_argument(
        "--stack-name", help="the deployed stack: its outputs name the bucket and distribution"
    )
    parser.add_argument("--bucket", help="the web bucket (instead of --stack-name)")
    parser.add_argument("--distribution-id", help="the distribution to invalidate (instead of --stack-name)")
    parser.add_argument("--api-base-url", default="/api", help="what the pages' config.json names as the API")
    parser.add_argument("--region", default=None)
    parser.add_argument("--endpoint-url", default=None, help="an S3/CloudFront endpoint (tests, local)")
    args = parser.parse_args(argv)
    session = boto3.session.Session(region_name=args.region)
    bucket, distribution_id = args.bucket, args.distribution_id
    if args.stack_name:
        outputs = stack_outputs(
            session.client("cloudformation", endpoint_url=args.endpoint_url), args.stack_name
        )
        bucket = bucket or outputs["WebBucketName"]
        distribution_id = distribution_id or outputs["WebDistributionId"]
        print(f"pages of {args.stack_name}: {outputs.get('WebUrl', '')}/console/ and /portal/")
    if not bucket:
        parser.error("give --stack-name, or --bucket (and --distribution-id)")
    result = publish(
        session.client("s3", endpoint_url=args.endpoint_url),
        session.client("cloudfront", endpoint_url=args.endpoint_url),
        bucket,
        distribution_id,
        args.api_base_url,
    )
    print(
        f"uploaded {len(result['uploaded'])} files to s3://{bucket}/, deleted {len(result['deleted'])}, "
        f"invalidation {result['invalidation'] or '(none)'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
