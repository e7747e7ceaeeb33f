"""Secrets: generated here, shown once, stored only as hashes.

Device secrets, owner tokens and API keys are 256-bit random tokens, so a single SHA-256 is enough to make
the stored hash useless to a thief (no dictionary to try), and cheap enough to check on every ingest request.
"""

import hashlib
import secrets


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_public_id(kind: str) -> str:
    # Short, readable on a label, and unguessable enough that ids do not reveal how many devices exist.
    alphabet = "23456789abcdefghjkmnpqrstuvwxyz"
    return f"{kind}-" + "".join(secrets.choice(alphabet) for _ in range(8))
