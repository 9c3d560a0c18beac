"""How identities are compared: the normal forms of tax ids, names and domains.

One home for the comparison rules that the duplicate check, the blocked list and the tax id claim
all use, so that what is added to the blocked list matches what onboarding looks up. A blocked-list
entry is stored in its normal form and a supplier's fields are put in the same form before the
lookup, so every spelling that looks or resolves the same meets the same key:

* NFKC first: fullwidth letters and dots and other compatibility forms become plain ones.
* Domains: IDNA labels are decoded (``xn--...`` punycode to Unicode), so the Unicode and the
  punycode spelling of one name are one key; the ideographic full stops count as dots, as IDNA
  says; trailing dots and a leading ``www.`` go. A domain also stands for its subdomains:
  :func:`domain_and_parents` gives the host and every parent, each looked up (decisions.md D27).
* Confusable letters (:data:`LOOKALIKES`) are replaced by the Latin letter they look like, in
  domains and names, so ``example.com`` or ``Acme`` spelt with a Cyrillic letter meets the Latin
  entry.
* Names then lose accents, case and punctuation.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from urllib.parse import urlsplit

# The letters of other scripts that look like a Latin letter in a name or a domain, under the Latin
# letter they look like, by their Unicode names (so that the table cannot fool its reader): the
# Cyrillic, Greek and Armenian look-alikes of a-z in Unicode's confusables data (UTS #39), capitals and small letters apart (Greek capital eta looks like H, its
# small letter like n). Written by hand because no maintained pure-Python package computes the
# UTS #39 skeleton (confusable-homoglyphs detects mixed scripts but gives no skeleton; confusables
# 1.2.0 has had no release since 2021), and because the full skeleton would also rewrite ASCII
# ("rn" -> "m", "1" -> "l"), which changes the stored key of every plain ASCII entry: here ASCII is
# never rewritten, so entries stored before this rule keep matching. A look-alike missing here is
# one line to add (with a test in tests/unit/test_supplier_rules.py).
LOOKALIKES: dict[str, tuple[str, ...]] = {
    "a": (
        "CYRILLIC CAPITAL LETTER A",
        "CYRILLIC SMALL LETTER A",
        "GREEK CAPITAL LETTER ALPHA",
        "GREEK SMALL LETTER ALPHA",
        "LATIN SMALL LETTER ALPHA",
    ),
    "b": ("CYRILLIC CAPITAL LETTER VE", "CYRILLIC SMALL LETTER VE", "GREEK CAPITAL LETTER BETA"),
    "c": ("CYRILLIC CAPITAL LETTER ES", "CYRILLIC SMALL LETTER ES", "GREEK LUNATE SIGMA SYMBOL"),
    "d": ("CYRILLIC SMALL LETTER KOMI DE",),
    "e": (
        "CYRILLIC CAPITAL LETTER IE",
        "CYRILLIC SMALL LETTER IE",
        "GREEK CAPITAL LETTER EPSILON",
        "GREEK SMALL LETTER EPSILON",
    ),
    "g": ("LATIN SMALL LETTER SCRIPT G",),
    "h": (
        "CYRILLIC CAPITAL LETTER EN",
        "CYRILLIC SMALL LETTER EN",
        "GREEK CAPITAL LETTER ETA",
        "CYRILLIC SMALL LETTER SHHA",
        "ARMENIAN SMALL LETTER HO",
    ),
    "i": (
        "CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I",
        "CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I",
        "GREEK CAPITAL LETTER IOTA",
        "GREEK SMALL LETTER IOTA",
        "LATIN SMALL LETTER DOTLESS I",
    ),
    "j": ("CYRILLIC CAPITAL LETTER JE", "CYRILLIC SMALL LETTER JE", "GREEK LETTER YOT"),
    "k": (
        "CYRILLIC CAPITAL LETTER KA",
        "CYRILLIC SMALL LETTER KA",
        "GREEK CAPITAL LETTER KAPPA",
        "GREEK SMALL LETTER KAPPA",
    ),
    "l": ("CYRILLIC LETTER PALOCHKA", "CYRILLIC SMALL LETTER PALOCHKA"),
    "m": ("CYRILLIC CAPITAL LETTER EM", "CYRILLIC SMALL LETTER EM", "GREEK CAPITAL LETTER MU"),
    "n": ("GREEK CAPITAL LETTER NU", "GREEK SMALL LETTER ETA"),
    "o": (
        "CYRILLIC CAPITAL LETTER O",
        "CYRILLIC SMALL LETTER O",
        "GREEK CAPITAL LETTER OMICRON",
        "GREEK SMALL LETTER OMICRON",
        "ARMENIAN SMALL LETTER OH",
    ),
    "p": (
        "CYRILLIC CAPITAL LETTER ER",
        "CYRILLIC SMALL LETTER ER",
        "GREEK CAPITAL LETTER RHO",
        "GREEK SMALL LETTER RHO",
    ),
    "q": ("CYRILLIC CAPITAL LETTER QA", "CYRILLIC SMALL LETTER QA"),
    "s": ("CYRILLIC CAPITAL LETTER DZE", "CYRILLIC SMALL LETTER DZE"),
    "t": (
        "CYRILLIC CAPITAL LETTER TE",
        "CYRILLIC SMALL LETTER TE",
        "GREEK CAPITAL LETTER TAU",
        "GREEK SMALL LETTER TAU",
    ),
    "u": ("GREEK SMALL LETTER UPSILON", "ARMENIAN SMALL LETTER SEH"),
    "v": ("GREEK SMALL LETTER NU",),
    "w": ("CYRILLIC CAPITAL LETTER WE", "CYRILLIC SMALL LETTER WE"),
    "x": (
        "CYRILLIC CAPITAL LETTER HA",
        "CYRILLIC SMALL LETTER HA",
        "GREEK CAPITAL LETTER CHI",
        "GREEK SMALL LETTER CHI",
    ),
    "y": (
        "CYRILLIC CAPITAL LETTER U",
        "CYRILLIC SMALL LETTER U",
        "CYRILLIC CAPITAL LETTER STRAIGHT U",
        "CYRILLIC SMALL LETTER STRAIGHT U",
        "GREEK CAPITAL LETTER UPSILON",
        "GREEK SMALL LETTER GAMMA",
    ),
    "z": ("GREEK CAPITAL LETTER ZETA",),
}
CONFUSABLES = str.maketrans(
    {unicodedata.lookup(n): latin for latin, names in LOOKALIKES.items() for n in names}
)
# IDNA's label separators besides ".": ideographic, fullwidth and halfwidth ideographic full stops.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def tax_id(value: str) -> str:
    return re.sub(r"[\s]", "", value).upper()


def letters(value: str) -> str:
    """NFKC, then every confusable letter as the Latin one it looks like, then case-folded."""
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", value))
    return unicodedata.normalize("NFC", decomposed.translate(CONFUSABLES)).casefold()


def name(value: str) -> str:
    folded = unicodedata.normalize("NFKD", letters(value)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", " ", folded).strip()


def domain(value: str) -> str:
    """A domain in its normal form: as an admin types it for the blocked list, or a host name."""
    text = unicodedata.normalize("NFKC", value).translate(_DOTS).strip().rstrip(".")
    host = ".".join(_label(label) for label in text.split("."))
    return host.removeprefix("www.")


def _label(label: str) -> str:
    if label[:4].lower() == "xn--":
        with contextlib.suppress(UnicodeError):  # not valid punycode: compared as written
            label = label[4:].encode("ascii").decode("punycode")
    return letters(label)


def domain_and_parents(normal: str) -> list[str]:
    """A normalised domain and each parent domain, longest first (``a.b.c`` -> ``a.b.c``, ``b.c``,
    ``c``): a blocked domain blocks its subdomains, whatever the public suffix (D27)."""
    labels = normal.split(".") if normal else []
    return [".".join(labels[i:]) for i in range(len(labels)) if all(labels[i:])]


def email_domain(email: str) -> str:
    return domain(email.rsplit("@", 1)[-1])


def website_domain(website: str) -> str:
    """The website's host in its normal form, or "" for a URL with no host that urllib can read
    (``https://bracket]shop.de/`` is admitted by the schema's pattern but is no URL)."""
    try:
        host = urlsplit(website.strip()).hostname
    except ValueError:  # "Invalid IPv6 URL", a netloc NFKC would change: no usable host
        return ""
    return domain(host or "")
