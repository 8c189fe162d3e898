"""A real SMTP server for the test suite: aiosmtpd on loopback.

Every message it accepts is written, as received, to a file in --dir. With
--user and --password it requires AUTH (PLAIN or LOGIN) with those credentials.
With --starttls it makes a throw-away certificate authority (trustme), writes
its certificate to ca.pem in --dir, serves a certificate for localhost and
127.0.0.1 from it, and requires STARTTLS before anything else. It prints READY
once listening and stops when its standard input closes.
"""

import argparse
import os
import sys
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Saver:
    def __init__(self, folder):
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):
        secure = "starttls" if session.ssl else "plain"
        name = os.path.join(self.folder, f"{uuid.uuid4().hex}.{secure}.eml")
        with open(name + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(name + ".tmp", name)
        return "250 Message accepted for delivery"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return check


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--starttls", action="store_true")
    args = parser.parse_args()
    kwargs = {}
    if args.user:
        kwargs = dict(
            authenticator=authenticator(args.user, args.password or ""),
            auth_required=True,
            auth_require_tls=args.starttls,
        )
    if args.starttls:
        import ssl

        import trustme

        ca = trustme.CA()
        ca.cert_pem.write_to_path(os.path.join(args.dir, "ca.pem"))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
        kwargs.update(tls_context=context, require_starttls=True)
    controller = Controller(Saver(args.dir), hostname="127.0.0.1", port=args.port, **kwargs)
    controller.start()
    print("READY", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
