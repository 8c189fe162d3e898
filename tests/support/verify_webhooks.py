"""Verifies webhook requests with the standardwebhooks package, an
implementation independent of Sesame's: prints how many verify.

Usage: verify_webhooks.py SECRET JSON, where JSON is a list of
{"headers": {...}, "body": "..."} exactly as received."""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

secret, requests = sys.argv[1], json.loads(sys.argv[2])
hook = Webhook(secret)
verified = 0
for request in requests:
    try:
        hook.verify(request["body"], request["headers"])
        verified += 1
    except WebhookVerificationError as e:
        print(f"refused: {e}", file=sys.stderr)
print(verified)
