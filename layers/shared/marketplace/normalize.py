"""How identities are compared: the normal forms of tax ids, names and domains.

One home for the comparison rules that the duplicate check, the blocked list and the tax id claim
all use, so that what is added to the blocked list matches what onboarding looks up.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit


def tax_id(value: str) -> str:
    return re.sub(r"[\s]", "", value).upper()


def name(value: str) -> str:
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", " ", folded).strip()


def domain(value: str) -> str:
    """A domain as an admin types it for the blocked list."""
    return value.strip().lower().removeprefix("www.").rstrip(".")


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].strip().lower().rstrip(".")


def website_domain(website: str) -> str:
    host = (urlsplit(website.strip()).hostname or "").lower().rstrip(".")
    return host.removeprefix("www.")
