"""Local tokens carry the claims the Cognito authorizer passes; bad tokens get 401."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from marketplace_local.auth import AuthError, TokenIssuer


@pytest.fixture
def issuer(tmp_path):
    return TokenIssuer.load_or_create(tmp_path)


def test_the_key_is_created_once_and_kept(tmp_path):
    first = TokenIssuer.load_or_create(tmp_path)
    token = first.mint("t1", "retailer")
    assert TokenIssuer.load_or_create(tmp_path).verify(f"Bearer {token}")["custom:tenant_id"] == "t1"
    assert (tmp_path / "jwt-signing-key.pem").stat().st_mode & 0o077 == 0


def test_claims_arrive_as_strings_like_the_cognito_authorizer_passes_them(issuer):
    claims = issuer.verify("Bearer " + issuer.mint("t1", "supplier", supplier_id="s9"))
    assert claims["cognito:groups"] == "supplier"
    assert claims["custom:tenant_id"] == "t1" and claims["custom:supplier_id"] == "s9"
    assert claims["token_use"] == "id"
    assert all(isinstance(v, str) for v in claims.values())


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz"])
def test_missing_or_malformed_tokens_are_refused(issuer, header):
    with pytest.raises(AuthError):
        issuer.verify(header)


def test_an_expired_token_is_refused(issuer):
    with pytest.raises(AuthError, match="expired"):
        issuer.verify("Bearer " + issuer.mint("t1", "admin", ttl_seconds=-10))


def test_a_token_signed_by_another_key_is_refused(issuer):
    other = TokenIssuer(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(AuthError, match="Signature"):
        issuer.verify("Bearer " + other.mint("t1", "admin"))


def test_a_token_without_a_required_claim_is_refused(issuer):
    token = jwt.encode({"sub": "x", "iss": "marketplace-local", "aud": "marketplace-local-client", "exp": 2**31},
                       issuer.private_key, algorithm="RS256")  # fmt: skip
    with pytest.raises(AuthError):
        issuer.verify("Bearer " + token)


def test_a_supplier_token_needs_a_supplier_id(issuer):
    with pytest.raises(ValueError, match="supplier-id"):
        issuer.mint("t1", "supplier")
    with pytest.raises(ValueError, match="role must be"):
        issuer.mint("t1", "superuser")
