"""Writes tests/fixtures/legacy-hashes.json: password hashes in the formats
`sesame import` accepts, each produced by another implementation than
Sesame's (Python's hashlib, passlib, the bcrypt package, argon2-cffi).

Regenerate with:
    python3 -m venv /tmp/hv && /tmp/hv/bin/pip install passlib "bcrypt==4.0.1" argon2-cffi
(passlib 1.7 cannot drive bcrypt 4.1 or later.)
    /tmp/hv/bin/python tests/support/legacy_hashes.py > tests/fixtures/legacy-hashes.json
"""

import base64
import hashlib
import json
import os

import argon2
import bcrypt
from passlib import hash as ph

PASSWORD = "Tr0ub4dor&3 legacy"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def django_pbkdf2(password: str, iterations: int) -> str:
    salt = base64.b64encode(os.urandom(12)).decode()[:16]
    dk = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(dk).decode()}"


def werkzeug_pbkdf2(password: str, iterations: int) -> str:
    salt = base64.b64encode(os.urandom(12)).decode()[:16]
    dk = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2:sha256:{iterations}${salt}${dk.hex()}"


def phc_pbkdf2(password: str, digest: str, iterations: int) -> str:
    salt = os.urandom(16)
    dk = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations)
    return f"$pbkdf2-{digest}$i={iterations},l={len(dk)}${b64(salt)}${b64(dk)}"


def phc_scrypt(password: str, log_n: int, r: int, p: int) -> str:
    salt = os.urandom(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=2**log_n, r=r, p=p, dklen=32)
    return f"$scrypt$ln={log_n},r={r},p={p}${b64(salt)}${b64(dk)}"


def argon(kind, t, m, p):
    return argon2.PasswordHasher(time_cost=t, memory_cost=m, parallelism=p, type=kind).hash(PASSWORD)


vectors = [
    ("bcrypt $2b$ (bcrypt)", bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()),
    ("bcrypt $2a$ (passlib)", ph.bcrypt.using(rounds=4, ident="2a").hash(PASSWORD)),
    ("bcrypt $2y$ (passlib)", ph.bcrypt.using(rounds=4, ident="2y").hash(PASSWORD)),
    ("scrypt (passlib)", ph.scrypt.using(rounds=10, block_size=8, parallelism=1).hash(PASSWORD)),
    ("scrypt PHC (hashlib)", phc_scrypt(PASSWORD, 10, 8, 1)),
    ("pbkdf2-sha256 (passlib)", ph.pbkdf2_sha256.using(rounds=1000).hash(PASSWORD)),
    ("pbkdf2-sha512 (passlib)", ph.pbkdf2_sha512.using(rounds=1000).hash(PASSWORD)),
    ("pbkdf2-sha256 PHC (hashlib)", phc_pbkdf2(PASSWORD, "sha256", 1000)),
    ("pbkdf2-sha512 PHC (hashlib)", phc_pbkdf2(PASSWORD, "sha512", 1000)),
    ("pbkdf2_sha256 Django (hashlib)", django_pbkdf2(PASSWORD, 1000)),
    ("pbkdf2:sha256 Werkzeug (hashlib)", werkzeug_pbkdf2(PASSWORD, 1000)),
    ("argon2i (argon2-cffi)", argon(argon2.Type.I, 2, 1024, 1)),
    ("argon2d (argon2-cffi)", argon(argon2.Type.D, 2, 1024, 2)),
    ("argon2id, other parameters (argon2-cffi)", argon(argon2.Type.ID, 1, 2048, 1)),
]

print(json.dumps({"password": PASSWORD, "hashes": [{"name": n, "hash": h} for n, h in vectors]}, indent=2))
