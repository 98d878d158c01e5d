"""`callgate web`: serve the web app; `web init` and `web user ...` manage its users.

    callgate web [--config FILE]                       serve ([web] listen, TLS, files)
    callgate web init --admin NAME [--config FILE]     the secret key and the first admin
    callgate web user add NAME --role R [--extension EXT]...
    callgate web user remove|passwd|disable|enable NAME
    callgate web user extensions NAME [EXT...]
    callgate web user list

Passwords are read from standard input (one line) or, on a terminal, asked
twice without echo; never taken from the command line.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an action's own --config must not reset one given before the action
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="TOML configuration ([web] table; default: built-in settings)")
    web = sub.add_parser("web", parents=[common], help="the web app: screen-pop, status, "
                         "reports, users",
                         description="Serve the web app ([web] listen, default 0.0.0.0:8080; "
                                     "HTTPS when tls_cert and tls_key are set). Run `callgate "
                                     "web init --admin NAME` once first.")
    web.set_defaults(func=cmd_serve)
    acts = web.add_subparsers(metavar="ACTION")

    init = acts.add_parser("init", parents=[common], help="make the secret key and the first "
                           "admin", description="Create [web] secret_key_file (32 random "
                           "bytes, 0600) if missing and the first admin user. The password is "
                           "read from standard input or asked twice without echo.")
    init.add_argument("--admin", required=True, metavar="NAME")
    init.set_defaults(func=cmd_init)

    user = acts.add_parser("user", help="manage web users")
    user.set_defaults(func=lambda args: (user.print_help(sys.stderr), 2)[1])
    uacts = user.add_subparsers(metavar="ACTION")
    add = uacts.add_parser("add", parents=[common], help="add a user (password from stdin "
                           "or asked)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", required=True, choices=("admin", "supervisor", "agent"))
    add.add_argument("--extension", action="append", default=[], metavar="EXT",
                     help="an extension whose transfers the user sees (repeat for more)")
    add.set_defaults(func=cmd_user, action="add")
    for name, text in (("remove", "remove a user"),
                       ("passwd", "set a user's password (their sessions end)"),
                       ("disable", "disable a user (their sessions end)"),
                       ("enable", "enable a disabled user")):
        p = uacts.add_parser(name, parents=[common], help=text)
        p.add_argument("name", metavar="NAME")
        p.set_defaults(func=cmd_user, action=name)
    ext = uacts.add_parser("extensions", parents=[common], help="set a user's extensions "
                           "(none: clear them)")
    ext.add_argument("name", metavar="NAME")
    ext.add_argument("extensions", nargs="*", metavar="EXT")
    ext.set_defaults(func=cmd_user, action="extensions")
    lst = uacts.add_parser("list", parents=[common], help="list users")
    lst.set_defaults(func=cmd_user, action="list")


def _settings(args):
    from ..config import Table, load
    from .settings import WebSettings

    config = getattr(args, "config", None)
    return WebSettings.from_table(load(config) if config else Table({}))


def cmd_serve(args: argparse.Namespace) -> int:
    import logging
    import signal

    from .. import sdnotify
    from ..config import ConfigError
    from ..store.records import StoreError
    from .app import create_app
    from .keyfile import KeyFileError
    from .server import ServerError, listen, make_server, url

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="callgate web: %(message)s")
    logging.getLogger("cheroot").setLevel(logging.WARNING)
    try:
        settings = _settings(args)
        app = create_app(settings)
        server = make_server(app, settings)
        listen(server, settings)
    except (ConfigError, KeyFileError, ServerError, StoreError) as err:
        print(f"callgate web: {err}", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _terminate)
    print(f"callgate web: serving on {url(settings, server)}", file=sys.stderr, flush=True)
    sdnotify.ready(f"serving on {url(settings, server)}")
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        sdnotify.stopping()
        app.extensions["callgate"].stopping.set()      # open event streams end now
        _stop(server)
        signal.signal(signal.SIGTERM, previous)
    return 0


def _stop(server, wait_s: float = 10.0) -> None:
    """Stop the server, but never hang on the way out: cheroot joins its worker threads
    without a limit once it has closed their sockets, and a worker stuck on a client would
    keep the process alive. Nothing is left to flush (every write is a committed SQLite
    transaction), so past `wait_s` the process simply ends."""
    import os
    import threading

    stopper = threading.Thread(target=server.stop, name="stop", daemon=True)
    stopper.start()
    stopper.join(wait_s)
    if stopper.is_alive():
        print("callgate web: a connection did not close in time; exiting anyway",
              file=sys.stderr, flush=True)
        os._exit(0)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def cmd_init(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..store.records import StoreError
    from .keyfile import make_secret_key
    from .users import UserError, Users, check_username

    me = "callgate web init"
    try:
        settings = _settings(args)
        name = check_username(args.admin)
        with Users(settings.db) as users:
            if users.enabled_admins():
                print(f"{me}: {settings.db} already has an admin; use `callgate web user "
                      "passwd` to set a password", file=sys.stderr)
                return 1
            password = _read_password(name)
            made = make_secret_key(settings.secret_key_file)
            users.add(name, "admin", password)
    except (ConfigError, StoreError, UserError, OSError) as err:
        print(f"{me}: {_one_line(err)}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    what = "made" if made else "kept"
    print(f"{what} the secret key {settings.secret_key_file}; admin {name} added to "
          f"{settings.db}")
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..store.records import StoreError
    from .users import UserError, Users

    me = f"callgate web user {args.action}"
    try:
        settings = _settings(args)
        with Users(settings.db) as users:
            if args.action == "list":
                for u in users.all():
                    print("\t".join((u.username, u.role,
                                     "disabled" if u.disabled else "enabled",
                                     ",".join(u.extensions) or "-")))
            elif args.action == "add":
                if users.get(args.name) is not None:
                    raise UserError(f"user {args.name.strip().lower()} already exists")
                user = users.add(args.name, args.role, _read_password(args.name),
                                 args.extension)
                print(f"added {user.username} ({user.role})")
            elif args.action == "remove":
                users.remove(args.name)
                print(f"removed {args.name}")
            elif args.action == "passwd":
                if users.get(args.name) is None:
                    raise UserError(f"no user {args.name.strip().lower()!r}")
                users.set_password(args.name, _read_password(args.name))
                print(f"password set for {args.name}; their sessions have ended")
            elif args.action in ("disable", "enable"):
                users.set_disabled(args.name, args.action == "disable")
                print(f"{args.action}d {args.name}")
            elif args.action == "extensions":
                exts = users.set_extensions(args.name, args.extensions)
                print(f"extensions of {args.name}: {', '.join(exts) or 'none'}")
    except (ConfigError, StoreError, UserError, OSError) as err:
        print(f"{me}: {_one_line(err)}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    return 0


def _read_password(name: str) -> str:
    """One line from stdin, or asked twice without echo on a terminal; UserError if the
    two differ or it is too short."""
    from .users import UserError, check_password

    if sys.stdin is not None and not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass
        import hmac

        password = getpass.getpass(f"password for {name}: ")
        again = getpass.getpass("again: ")
        if not hmac.compare_digest(password.encode(), again.encode()):
            raise UserError("the two passwords differ")
    return check_password(password, name)


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and not str(err).startswith("web."):
        return f"{getattr(err, 'filename', '') or ''}: {err.strerror or err}"
    return str(err).splitlines()[0]
