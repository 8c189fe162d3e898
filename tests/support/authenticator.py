"""A software FIDO2 authenticator for the passkey tests: soft_fido2, which
Sesame itself does not use. Its key, the user handle and the signature
counter are kept in a JSON state file between calls.

    authenticator.py create STATE [--origin URL] [--backup-eligible]   < creation options
    authenticator.py get STATE [--origin URL] [--rp-id ID] [--counter N] < request options

`--counter N` signs as a clone would, with counter N; the authenticator's own
counter moves on as if it had signed.

The options are what Sesame's `begin` answered in `options` (the
`publicKey` member is used); the PublicKeyCredential JSON that
`navigator.credentials.create()` or `.get()` would give is printed.
"""

import argparse
import base64
import json
import sys

from cryptography.hazmat.primitives import serialization
from soft_fido2.authenticator.fido2 import Fido2Authenticator
from soft_fido2.key_pair import KeyPair


def unpadded(value):
    """base64url without padding, everywhere a browser would send it."""
    if isinstance(value, str):
        return value.rstrip("=")
    if isinstance(value, dict):
        return {k: unpadded(v) for k, v in value.items()}
    return value


def load(path):
    with open(path) as f:
        state = json.load(f)
    private = serialization.load_pem_private_key(state["key"].encode(), password=None)
    authenticator = Fido2Authenticator(keyPair=KeyPair(private, private.public_key()),
                                       counter=state["counter"])
    authenticator.userHandle = base64.urlsafe_b64decode(state["user_handle"])
    return authenticator, state


def save(path, authenticator, state):
    state["counter"] = authenticator.counter
    with open(path, "w") as f:
        json.dump(state, f)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("ceremony", choices=["create", "get"])
    parser.add_argument("state")
    parser.add_argument("--origin")
    parser.add_argument("--rp-id")
    parser.add_argument("--counter", type=int)
    parser.add_argument("--backup-eligible", action="store_true")
    args = parser.parse_args()
    options = json.load(sys.stdin)["publicKey"]
    if args.origin:
        options["origin"] = args.origin
    if args.ceremony == "create":
        authenticator = Fido2Authenticator()
        credential = authenticator.credential_create(options, atteStmtFmt="none",
                                                     be=args.backup_eligible)
        state = {
            "key": authenticator.kp.get_private_bytes().decode(),
            "user_handle": base64.urlsafe_b64encode(authenticator.userHandle).decode(),
            "counter": authenticator.counter,
            "backup_eligible": args.backup_eligible,
            "credential_id": authenticator.get_credential_id(),
        }
    else:
        authenticator, state = load(args.state)
        genuine = authenticator.counter
        if args.counter is not None:
            authenticator.counter = args.counter
        if args.rp_id:
            options["rpId"] = args.rp_id
        # A credential keeps the backup eligibility it was made with.
        credential = authenticator.credential_request(options, be=state["backup_eligible"])
        if args.counter is not None:
            # A clone's counter: the genuine authenticator's moves on as before.
            authenticator.counter = genuine + 1
    save(args.state, authenticator, state)
    print(json.dumps(unpadded(credential)))


if __name__ == "__main__":
    main()
