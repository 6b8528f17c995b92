"""Local stand-in for API Gateway's JWT authorizer: a development signing key, tokens, and checks.

The key lives in .local/dev-jwt.key (created on first use, never committed, never used by the
deployed template, whose authorizer trusts the real issuer). `make token` issues tokens with it;
`make run` verifies them exactly as the authorizer would: signature, issuer, audience, expiry.
"""

from __future__ import annotations

import argparse
import secrets
import time

import jwt

from devtools.paths import LOCAL

KEY_FILE = LOCAL / "dev-jwt.key"
ISSUER = "http://127.0.0.1/wallet-local-dev"
AUDIENCE = "wallet-local"
ALGORITHM = "HS256"
DEFAULT_SCOPES = ("wallet:read", "wallet:write")


class Unauthorized(Exception):
    pass


def signing_key() -> bytes:
    if not KEY_FILE.exists():
        KEY_FILE.parent.mkdir(exist_ok=True)
        KEY_FILE.write_text(secrets.token_hex(32))
        KEY_FILE.chmod(0o600)
    return KEY_FILE.read_text().strip().encode()


def issue_token(subject: str, scopes: tuple[str, ...] = DEFAULT_SCOPES, *, lifetime: int = 12 * 3600) -> str:
    now = int(time.time())
    claims = {
        "sub": subject,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + lifetime,
        "scope": " ".join(scopes),
    }
    return jwt.encode(claims, signing_key(), algorithm=ALGORITHM)


def verify(authorization: str | None) -> dict:
    """The `requestContext.authorizer.jwt` block API Gateway would add for this Authorization header."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized("missing bearer token")
    try:
        claims = jwt.decode(
            authorization.removeprefix("Bearer ").strip(),
            signing_key(),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iss", "aud"]},
        )
    except jwt.PyJWTError as error:
        raise Unauthorized(str(error)) from None
    scopes = str(claims.get("scope", "")).split()
    # API Gateway hands claims to the function as strings.
    return {"claims": {name: str(value) for name, value in claims.items()}, "scopes": scopes}


def main() -> None:
    """`make token SUB=alice [SCOPES="wallet:admin"]`: print a token for the local API."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--sub", required=True)
    parser.add_argument("--scopes", default="", help="extra scopes, space-separated (e.g. wallet:admin)")
    arguments = parser.parse_args()
    print(issue_token(arguments.sub, (*DEFAULT_SCOPES, *arguments.scopes.split())))


if __name__ == "__main__":
    main()
