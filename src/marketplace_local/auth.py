"""Local stand-in for the Cognito user pool authorizer.

On AWS, API Gateway's Cognito authorizer checks the ID token's signature, expiry and issuer and
passes its claims, every value a string, to the Lambda as ``requestContext.authorizer.claims``.
Locally a key pair kept under ``.local/`` signs and verifies the tokens (PyJWT, RS256) and the
claims are passed in the same shape, so the API code cannot tell the difference.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROLES = ("retailer", "supplier", "admin", "operator")
OPERATOR = "operator"  # the platform's operator: a token of no tenant (docs/decisions.md D47)
ISSUER = "marketplace-local"
AUDIENCE = "marketplace-local-client"
DEFAULT_STATE_DIR = Path(__file__).resolve().parents[2] / ".local"


def resolve_state_dir(explicit: Path | None = None) -> Path:
    """Where the local stack keeps its key and stack.json: the given folder, else
    $MARKETPLACE_STATE_DIR, else .local/ in the project."""
    return Path(explicit or os.environ.get("MARKETPLACE_STATE_DIR") or DEFAULT_STATE_DIR)


class AuthError(Exception):
    """The request carries no usable token: the authorizer answers 401."""


@dataclass
class TokenIssuer:
    private_key: rsa.RSAPrivateKey

    @classmethod
    def load_or_create(cls, state_dir: Path | None = None) -> TokenIssuer:
        """The key lives in ``state_dir/jwt-signing-key.pem``; the first run creates it."""
        state_dir = resolve_state_dir(state_dir)
        path = state_dir / "jwt-signing-key.pem"
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise AuthError(f"{path} is not an RSA private key")
            return cls(key)
        state_dir.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic: two first runs at once keep one key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return cls.load_or_create(state_dir)

    def mint(
        self,
        tenant: str | None,
        role: str,
        supplier_id: str | None = None,
        ttl_seconds: int = 3600,
        subject: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """An ID token with the claims a Cognito user of our user pool has."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if role == "supplier" and not supplier_id:
            raise ValueError("a supplier token needs --supplier-id")
        if (role == OPERATOR) == bool(tenant):
            raise ValueError("an operator token has no --tenant; every other role needs one")
        now = int(time.time())
        sub = subject or str(uuid.uuid4())
        claims: dict[str, Any] = {
            "sub": sub,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "token_use": "id",
            "cognito:username": sub,
            "cognito:groups": [role],
            "iat": now,
            "auth_time": now,
            "exp": now + ttl_seconds,
        }
        if tenant:
            claims["custom:tenant_id"] = tenant
        if supplier_id:
            claims["custom:supplier_id"] = supplier_id
        claims.update(extra or {})
        return jwt.encode(claims, self.private_key, algorithm="RS256")

    def verify(self, authorization: str | None) -> dict[str, str]:
        """Claims as API Gateway's Cognito authorizer passes them, or AuthError (401)."""
        if not authorization:
            raise AuthError("missing Authorization header")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            claims = jwt.decode(
                token,
                self.private_key.public_key(),
                algorithms=["RS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "token_use"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(str(exc)) from exc
        if claims.get("token_use") != "id":
            raise AuthError("not an ID token")
        return {key: _claim_string(value) for key, value in claims.items()}


def _claim_string(value: Any) -> str:
    # The REST API Cognito authorizer flattens every claim to a string; lists become comma-joined.
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
