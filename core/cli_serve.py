"""`latih serve`: start the app. Localhost only by default; `--lan` is the field mode
(HTTPS with a certificate made on this machine, a password on every page, the address to open
printed here and shown in the app). See core/field.py."""
from __future__ import annotations

import logging
import os
import sys
from core.i18n import Msg

log = logging.getLogger(__name__)

DEFAULT_PORT = 8501


def add_serve_command(commands, common) -> None:
    serve = commands.add_parser(
        "serve", parents=[common], help="start the app in the browser (localhost only unless --lan)",
        description="Start the Latih app. Without --lan it listens on this computer only (http://localhost). "
                    "With --lan (field mode) phones on the same network can open it: HTTPS with a certificate "
                    "made on this computer, and a password on every page.")
    serve.add_argument("--lan", action="store_true", help="field mode: listen on the local network, with HTTPS "
                       "and a password, so a phone's camera can be used")
    serve.add_argument("--address", help="with --lan: the IP address to listen on (default: this computer's "
                       "address on the local network)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--password", help="with --lan: the password to ask for (default: $LATIH_PASSWORD, or a "
                       "new one printed here)")
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from core import field

    if not 1 <= args.port <= 65535:
        raise field.FieldError(Msg("err.cli.port", port=str(args.port)))
    env = dict(os.environ)
    env.pop(field.PASSWORD_ENV, None)
    env.pop(field.URL_ENV, None)
    if not args.lan:
        if args.address or args.password:
            raise field.FieldError(Msg("err.cli.lan_only"))
        address, cert, key = "localhost", None, None
        url = f"http://localhost:{args.port}"
    else:
        address = field.check_address(args.address or field.lan_address())
        password = args.password or os.environ.get("LATIH_PASSWORD") or field.new_password()
        env[field.PASSWORD_ENV] = field.hash_password(password)
        cert, key = field.ensure_certificate(address)
        url = f"https://{address}:{args.port}"
        env[field.URL_ENV] = url
        print(f"field mode: open {url} on the phone (same network); the browser warns once about the "
              "certificate, which was made on this computer")
        if not (args.password or os.environ.get("LATIH_PASSWORD")):
            print(f"password: {password}")
    print(f"Latih at {url} (stop with Ctrl+C)", flush=True)
    command = field.streamlit_command(address, args.port, cert, key)
    log.info("starting %s", " ".join(command))
    if os.name == "posix":
        os.execve(command[0], command, env)  # the app replaces this process: Ctrl+C and kill reach it
    import subprocess

    return subprocess.call(command, env=env)
