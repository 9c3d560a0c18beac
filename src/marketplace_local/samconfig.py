"""A premium tenant's environment in ``samconfig.toml`` (the silo tier, docs/decisions.md D53).

``marketplace tenant create --tier premium`` writes it; ``sam deploy --config-env <tenant>`` reads it
to deploy the same template as the tenant's own stack (``PinnedTenant``) into the account its AWS
profile names. It only writes the file: it deploys nothing. The other environments of the file, and
its comments, stay as they were: tomlkit (the TOML library the SAM CLI itself edits this file with)
keeps them, where a plain TOML writer would rewrite the whole file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit

DEFAULT_PATH = Path("samconfig.toml")
VERSION = 0.1  # the samconfig format the SAM CLI reads


def silo_environment(
    tenant_id: str, stack_name: str, region: str, profile: str, stage: str
) -> dict[str, Any]:
    """The settings of the tenant's own stack: every command (``global``) on its account and region,
    and ``deploy`` with the template's ``PinnedTenant`` set to the tenant, tagged with it (its cost
    shows per tenant)."""
    return {
        "global": {"parameters": {"stack_name": stack_name, "region": region, "profile": profile}},
        "deploy": {
            "parameters": {
                "capabilities": "CAPABILITY_IAM",
                "resolve_s3": True,
                "confirm_changeset": True,
                "parameter_overrides": f'PinnedTenant="{tenant_id}" Stage="{stage}"',
                "tags": f'app="marketplace" tenant="{tenant_id}" stage="{stage}"',
            }
        },
    }


def write_environment(path: Path, name: str, environment: dict[str, Any]) -> None:
    """``[name.*]`` in the file at ``path`` replaced by ``environment`` (the file made if missing)."""
    document = tomlkit.parse(path.read_text()) if path.exists() else tomlkit.document()
    if "version" not in document:
        document.add("version", VERSION)
    if name in document:
        del document[name]
    document.add(name, _table(environment))
    path.write_text(tomlkit.dumps(document))


def _table(values: dict[str, Any]) -> Any:
    """Nested tables as SAM writes them: ``[env.command.parameters]`` headers, no inline tables."""
    table = tomlkit.table(is_super_table=any(isinstance(v, dict) for v in values.values()))
    for key, value in values.items():
        table.add(key, _table(value) if isinstance(value, dict) else value)
    return table
