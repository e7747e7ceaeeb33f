"""Secrets: generated here, shown once, stored only as hashes.

Device secrets, owner tokens and API keys are 256-bit random tokens, so a single SHA-256 is enough to make
the stored hash useless to a thief (no dictionary to try), and cheap enough to check on every ingest request.

Mosquitto cannot check a SHA-256: its password file holds its own hash of each password, which the hub can make
only while it still sees the plaintext secret (at registration):

    mosquitto_hash("dev_...")     # "$7$101$<salt, base64>$<PBKDF2-SHA512, base64>"
"""

import base64
import hashlib
import secrets

# Mosquitto 2.0's password format `$7$`: PBKDF2-HMAC-SHA512 over a 12-byte random salt, with the iteration count
# its mosquitto_passwd writes (Mosquitto reads the count from each hash, so any count would be checked).
MOSQUITTO_ITERATIONS = 101
MOSQUITTO_SALT_BYTES = 12


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_public_id(kind: str) -> str:
    # Short, readable on a label, and unguessable enough that ids do not reveal how many devices exist.
    alphabet = "23456789abcdefghjkmnpqrstuvwxyz"
    return f"{kind}-" + "".join(secrets.choice(alphabet) for _ in range(8))


def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """The line Mosquitto's password_file holds for `password` after "user:"."""
    salt = secrets.token_bytes(MOSQUITTO_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
