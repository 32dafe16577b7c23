# A real SMTP server for the alert tests: aiosmtpd on a loopback port,
# STARTTLS required (the certificate given), AUTH PLAIN/LOGIN required
# over TLS (one user), each message written to OUT_DIR/N.eml with what the
# session was (TLS, who logged in) in X-Test-* headers first.
#   python3 smtpd.py CERT KEY OUT_DIR USER PASSWORD
import asyncio, os, ssl, sys, socket

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

cert, key, out, user, password = sys.argv[1:6]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)


class Handler:
    def __init__(self):
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        head = "X-Test-TLS: %s\r\nX-Test-Auth: %s\r\nX-Test-Rcpt: %s\r\n" % (
            "yes" if session.ssl else "no",
            session.auth_data.login.decode() if session.authenticated else "-",
            ",".join(envelope.rcpt_tos),
        )
        path = os.path.join(out, "%d.eml" % self.n)
        with open(path + ".tmp", "wb") as f:
            f.write(head.encode() + envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    return AuthResult(success=ok, auth_data=auth_data if ok else None)


probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
controller = Controller(
    Handler(),
    hostname="127.0.0.1",
    port=port,
    tls_context=context,
    require_starttls=True,
    authenticator=authenticator,
    auth_require_tls=True,
    auth_required=True,
)
controller.start()
print("READY %d" % port, flush=True)
try:
    sys.stdin.read()  # until the test closes our stdin (or dies)
finally:
    controller.stop()
