"""The `callgate` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .dsp import RATE
from .printable import printable


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _web_parser() if argv[:1] == ["web"] else _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


def _web_parser() -> argparse.ArgumentParser:
    """`callgate web` alone: the web app's process never loads the DSP commands' NumPy and
    SciPy (85 MiB of a 512 MiB board, issue 16)."""
    parser = argparse.ArgumentParser(prog="callgate", description=__doc__)
    from .web.cli import add_parser
    add_parser(parser.add_subparsers(metavar="COMMAND"))
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callgate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"callgate {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    dec = sub.add_parser("decode", help="decode DTMF, caller ID and tones in WAV files",
                         description="Print one JSON object per event heard in each WAV "
                                     "file, in time order.")
    dec.add_argument("files", nargs="+", metavar="FILE")
    dec.add_argument("--json", action="store_true",
                     help="JSON lines (the default; kept for scripts that ask for it)")
    dec.add_argument("--text", action="store_true", help="aligned text for people instead")
    dec.add_argument("--toneplan", default="auto", metavar="PLAN",
                     help="auto (every built-in plan; each tone names its plan), one "
                          "built-in plan by name (us, uk, etsi, de, ...) or a TOML file "
                          "(default: auto)")
    dec.set_defaults(func=cmd_decode)

    run = sub.add_parser("run", help="answer and run calls on the configured line",
                         description="Run the engine on the line backend of the config "
                                     "([line] backend, default: the simulated exchange) "
                                     "and print one line per call. Keyed digits are never "
                                     "printed, only how many were keyed.")
    run.add_argument("--config", metavar="FILE", help="TOML configuration file")
    run.add_argument("--calls", type=int, metavar="N", help="stop after N calls")
    run.add_argument("--json", action="store_true", help="one JSON object per call")
    run.add_argument("--line", metavar="NAME",
                     help="the line to answer when several are configured ([[line]] or "
                          "lines/NAME.toml; one process per line: callgate@NAME.service)")
    run.set_defaults(func=cmd_run)
    _directory_parser(sub)
    _check_config_parser(sub)
    # subcommands whose code lives beside the layer they drive (one line each)
    from .crm.outbox_cli import add_parser as _outbox; _outbox(sub)
    from .crm.sitecheck import add_parser as _crm; _crm(sub)
    from .web.cli import add_parser as _web; _web(sub)
    from .doctor.cli import add_parser as _doctor; _doctor(sub)
    from .scenario.cli import add_parser as _simulate; _simulate(sub)
    from .prompts_tool import add_parser as _prompts; _prompts(sub)
    from .report.cli import add_parser as _report; _report(sub)
    from .telemetry.fleet import add_parser as _fleet; _fleet(sub)
    from .appliance.provision import add_parser as _provision; _provision(sub)
    from .appliance.update import add_parser as _update; _update(sub)
    return parser


def cmd_decode(args: argparse.Namespace) -> int:
    """Decode each file; a bad file is reported on stderr and the rest go on."""
    from .dsp.decoder import decode
    from .toneplans import decode_toneplan
    from .wav import WavError, read_wav

    try:
        plan = decode_toneplan(args.toneplan)
    except (ValueError, OSError) as err:
        print(f"callgate decode: {err}", file=sys.stderr)
        return 2
    status = 0
    for name in args.files:
        try:
            samples = read_wav(name)
        except WavError as err:
            print(f"callgate decode: {err}", file=sys.stderr)
            status = 1
            continue
        for event in decode(samples, toneplan=plan):
            record = {"file": name, "t": round(event.sample / RATE, 3), **event.as_dict()}
            print(_text(record) if args.text else json.dumps(record), flush=False)
        sys.stdout.flush()
    return status


def cmd_run(args: argparse.Namespace) -> int:
    """Build the appliance from the config (app.py); run until the line ends, or until
    SIGTERM (systemd stop), which ends a call in progress cleanly, on hook and recorded."""
    import signal
    import time

    from . import sdnotify
    from .app import App, Settings, lines_off_the_audio_thread, logs_off_the_audio_thread
    from .config import ConfigError
    from .line import LineError

    if args.calls is not None and args.calls < 1:
        print("callgate run: --calls must be 1 or more", file=sys.stderr)
        return 2
    watchdog = sdnotify.Watchdog()
    running: list = []                   # the engine, once it runs: SIGTERM stops it

    def terminate(signum, frame) -> None:
        if running:
            running[0].stop()            # after this frame; the call in progress ends
        else:
            raise KeyboardInterrupt      # still starting: nothing to end

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        with logs_off_the_audio_thread(sys.stderr, "callgate run: %(message)s"), \
                lines_off_the_audio_thread(sys.stdout) as emit:
            def show(call) -> None:
                record = call.summary(call_rate)
                emit(json.dumps(record) if args.json else _call_text(record))

            try:
                local = Settings.load(args.config, args.line)
                settings = local.with_remote_config()
                while True:
                    try:
                        app = App.from_settings(
                            settings, on_call=show,
                            watchdog=lambda: watchdog.feed(time.monotonic()))
                        call_rate = app.line.rate
                        with app:
                            with app.line:
                                sdnotify.ready("answering calls")
                                running.append(app.engine)
                                app.engine.run(max_calls=args.calls)
                            sdnotify.stopping()
                        break
                    except (ConfigError, LineError) as err:
                        if running or settings is local:
                            raise
                        # a remote config that passed the checks but cannot start (a
                        # modem port that is not there): the local file, so the device
                        # stays on its broker and a fixed config can still reach it
                        print(f"callgate run: remote config {settings.remote_serial} does "
                              f"not start ({err}); running {args.config}", file=sys.stderr)
                        settings = local
                if app.restart_requested:
                    from .telemetry.remote import RESTART_STATUS
                    print("callgate run: a new remote config was applied; exiting to be "
                          "started on it", file=sys.stderr)
                    return RESTART_STATUS
            except ConfigError as err:
                print(f"callgate run: {err}", file=sys.stderr)
                return 2
            except LineError as err:
                print(f"callgate run: {err}", file=sys.stderr)
                return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _call_text(r: dict) -> str:
    """One line per call for people: who, what happened, how many keys (never which)."""
    cid = r["callerid"]
    who = "no caller ID"
    if cid:
        who = " ".join(printable(x) for x in (
            cid["number"] or f"withheld ({cid['number_absent']})", cid["name"]) if x)
    elif r["callerid_error"]:
        who = f"caller ID unreadable ({r['callerid_error']})"
    parts = [f"call {r['call']}", f"t={r['start']:.1f}s", f"rings={r['rings']}", who]
    if r["answered"] is not None:
        parts.append(f"keys={r['keys']}")
    if r["transfer"]:
        t = r["transfer"]
        parts.append(f"transfer {t['extension']} {t['mode']} {t['outcome']}")
    if r["callwaiting"]:
        parts.append(f"call waiting {','.join(str(n) for n in r['callwaiting'])}")
    end = r["end_reason"] + (f" ({r['hangup']})" if r["hangup"] else "")
    parts.append(f"end={end}")
    if r["handler_error"]:
        parts.append(f"handler error {r['handler_error']}")
    if r.get("pacing"):
        p = r["pacing"]
        parts.append(f"overruns={p['overruns']} late={p['late_frames']} "
                     f"max_lag={p['max_lag_ms']}ms")
    return "  ".join(parts)


def _cell(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)


def _text(record: dict) -> str:
    rest = " ".join(f"{k}={printable(_cell(v))}" for k, v in record.items()
                    if k not in ("file", "t", "event") and v is not None
                    and not (k == "plans" and len(v) < 2))
    return f"{record['file']}\t{record['t']:9.3f}\t{record['event']:<9}{rest}"


def _directory_parser(sub) -> None:
    """`callgate directory ACTION`: manage the embedded customer directory."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="PATH",
                        help="directory file (default: [crm] directory in the config, "
                             "else /var/lib/callgate/directory.sqlite)")
    common.add_argument("--config", metavar="FILE",
                        help="TOML configuration ([crm] directory, default_country)")
    top = sub.add_parser("directory", help="the embedded customer directory",
                         description="Manage the customer directory the appliance uses when "
                                     "no CRM is configured. Secrets are only ever stored as "
                                     "salted scrypt hashes and are never exported or printed.")
    top.set_defaults(func=lambda args: (top.print_help(sys.stderr), 2)[1])
    acts = top.add_subparsers(metavar="ACTION")

    imp = acts.add_parser("import", parents=[common], help="import customers from CSV",
                          description="Columns: id (digits), name, phones (';'-separated), "
                                      "pin and secret:KIND (hashed on import), identifiers "
                                      "('kind:value;...'); any other column is an identifier "
                                      "kind (e.g. account). All rows or none are imported.")
    imp.add_argument("csv", metavar="CSV")
    imp.add_argument("--replace", action="store_true",
                     help="replace customers that already exist (their secrets are kept "
                          "unless the row gives new ones)")
    imp.set_defaults(func=cmd_directory, action="import")

    exp = acts.add_parser("export", parents=[common], help="export customers as CSV "
                          "(never secrets)")
    exp.add_argument("--output", "-o", metavar="FILE", help="write here (0600) instead of stdout")
    exp.set_defaults(func=cmd_directory, action="export")

    add = acts.add_parser("add", parents=[common], help="add one customer")
    add.add_argument("id", metavar="ID", help="the customer's numeric identifier")
    add.add_argument("--name")
    add.add_argument("--phone", action="append", default=[], metavar="NUMBER")
    add.add_argument("--identifier", action="append", default=[], metavar="KIND:VALUE")
    add.set_defaults(func=cmd_directory, action="add")

    rem = acts.add_parser("remove", parents=[common], help="remove one customer")
    rem.add_argument("id", metavar="ID")
    rem.set_defaults(func=cmd_directory, action="remove")

    lst = acts.add_parser("list", parents=[common], help="list customers (ids masked)")
    lst.set_defaults(func=cmd_directory, action="list")

    sec = acts.add_parser("set-secret", parents=[common],
                          help="set a customer's secret (read from stdin or a prompt)",
                          description="The secret is read from standard input (one line) or, "
                                      "on a terminal, asked for twice without echo; never "
                                      "taken from the command line.")
    sec.add_argument("id", metavar="ID")
    sec.add_argument("--kind", default="pin", help="pin, last_digits, dob, ... (default: pin)")
    sec.set_defaults(func=cmd_directory, action="set-secret")

    hsh = acts.add_parser("hash-secret",
                          help="print a salted scrypt hash of a secret, to keep in a CRM field",
                          description="For a CRM that keeps each customer's secret in a field "
                                      "([crm] verify_hashed): prints the text to store there "
                                      "(scrypt$N$r$p$salt$digest, the embedded directory's "
                                      "scrypt). The secret is read from standard input (one "
                                      "line) or, on a terminal, asked for twice without echo.")
    hsh.add_argument("--kind", default="pin", help="the secret's kind, for the prompt")
    hsh.set_defaults(func=cmd_hash_secret)


def directory_settings(db: str | None, config: str | None) -> tuple[str, str]:
    """(path, default_country): --db, else [crm] directory, else the default path."""
    from .config import Table, load
    from .crm.directory import DEFAULT_PATH

    crm = (load(config) if config else Table({})).sub("crm")
    path = db or crm.get("directory", str, str(DEFAULT_PATH))
    return path, crm.get("default_country", str, "US")


def cmd_directory(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .crm.directory import Directory, DirectoryError
    from .privacy import mask

    me = f"callgate directory {args.action}"
    try:
        path, country = directory_settings(args.db, args.config)
    except ConfigError as err:
        print(f"{me}: {err}", file=sys.stderr)
        return 2
    try:
        if args.action == "set-secret":
            secret = _read_secret(args.kind)
            if secret is None:
                print(f"{me}: the two entries differ", file=sys.stderr)
                return 1
        with Directory(path, default_country=country) as directory:
            if args.action == "import":
                bar = _progress_bar(sys.stderr, "hashing secrets")
                n = directory.import_csv(args.csv, replace=args.replace, progress=bar)
                print(f"imported {n} customer{'s' * (n != 1)} into {path}")
            elif args.action == "export":
                if args.output:
                    import os
                    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    # O_CREAT's mode is for a new file only: an existing one is made
                    # private before a single id is written into it
                    os.fchmod(fd, 0o600)
                    with open(fd, "w", newline="", encoding="utf-8") as f:
                        n = directory.export_csv(f)
                    print(f"exported {n} customer{'s' * (n != 1)} to {args.output}",
                          file=sys.stderr)
                else:
                    directory.export_csv(sys.stdout)
            elif args.action == "add":
                ids = []
                for item in args.identifier:
                    kind, sep, value = item.partition(":")
                    if not sep:
                        print(f"{me}: --identifier takes KIND:VALUE", file=sys.stderr)
                        return 2
                    ids.append((kind, value))
                directory.add(args.id, args.name, args.phone, ids)
                print(f"added customer {mask(args.id)}")
            elif args.action == "remove":
                if not directory.remove(args.id):
                    print(f"{me}: no customer {mask(args.id)}", file=sys.stderr)
                    return 1
                print(f"removed customer {mask(args.id)}")
            elif args.action == "list":
                for c in directory.customers():
                    phones = ",".join(mask(p) for p in c["phones"]) or "-"
                    ids = ",".join(sorted(c["identifiers"])) or "-"
                    name = printable(c["name"]) or "-"
                    print("\t".join((mask(c["id"]), name, f"phones={phones}",
                                     f"identifiers={ids}",
                                     f"secrets={','.join(c['secrets']) or '-'}")))
            elif args.action == "set-secret":
                directory.set_secret(args.id, args.kind, secret)
                print(f"{args.kind} set for customer {mask(args.id)}")
    except (DirectoryError, OSError) as err:
        text = str(err) if isinstance(err, DirectoryError) else \
            f"{getattr(err, 'filename', '') or ''}: {err.strerror or err}"
        print(f"{me}: {text}", file=sys.stderr)
        return 1
    return 0


def _progress_bar(stream, what: str):
    """A one-line bar redrawn on `stream` when it is a terminal; None (quiet) otherwise."""
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    width = 30

    def show(done: int, total: int) -> None:
        filled = width * done // total if total else width
        stream.write(f"\r{what} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show


def cmd_hash_secret(args: argparse.Namespace) -> int:
    from .crm import hashed

    secret = _read_secret(args.kind)
    if secret is None:
        print("callgate directory hash-secret: the two entries differ", file=sys.stderr)
        return 1
    if not secret:
        print("callgate directory hash-secret: empty secret", file=sys.stderr)
        return 2
    print(hashed.make(secret))
    return 0


def _read_secret(kind: str) -> str | None:
    """One line from stdin, or asked twice without echo on a terminal (None if they differ)."""
    if sys.stdin is not None and not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass(f"new {kind}: ")
    again = getpass.getpass(f"{kind} again: ")
    return first if _same_secret(first, again) else None


def _same_secret(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def _check_config_parser(sub) -> None:
    """`callgate check-config FILE`: validate a whole configuration without running it."""
    chk = sub.add_parser("check-config", help="validate a configuration file",
                         description="Check every table of a TOML configuration ([engine], "
                                     "[line], [crm], the service lines) and that every prompt "
                                     "the service lines play exists as "
                                     "prompts_wav/<language>/<name>.wav. Prints one line "
                                     "naming the first bad key, unknown key or missing prompt "
                                     "and exits non-zero; exits 0 when the file is fine.")
    chk.add_argument("file", metavar="FILE")
    chk.set_defaults(func=cmd_check_config)


def check_config(path: str, warnings: list[str] | None = None,
                 lines: list[str] | None = None) -> list[str]:
    """Validate the file at `path` as `run` reads it (app.Settings), with every line
    it and lines/ beside it configure; ConfigError (one line naming the key) if
    anything is wrong. Returns the names of the service lines; `warnings` gets one
    line per destination no call can reach and, where the lines are named ([[line]],
    lines/), per service line naming a line that is not; `lines` the lines' names. Opens no line and no back end."""
    from .app import Settings

    from .lines import DEFAULT_LINE

    settings = Settings.load(path, pick=False)
    services = settings.services
    named = list(settings.lines) != [DEFAULT_LINE]     # [[line]] or lines/ name the lines
    if warnings is not None:
        for policy in services:
            warnings.extend(policy.unreachable())
            warnings.extend(f"service.{policy.name}.lines: no line {name!r} is configured"
                            for name in policy.lines if named and name not in settings.lines)
    if lines is not None:
        lines.extend(settings.lines)
    return [p.name for p in services]


def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import ConfigError

    warnings: list[str] = []
    lines: list[str] = []
    try:
        names = check_config(args.file, warnings, lines)
    except ConfigError as err:
        print(f"callgate check-config: {err}", file=sys.stderr)
        return 2
    for line in warnings:
        print(f"callgate check-config: warning: {line}", file=sys.stderr)
    if len(lines) > 1:
        print(f"{args.file}: {len(lines)} lines: {', '.join(lines)}")
    if names:
        print(f"{args.file}: ok ({len(names)} service line{'s' * (len(names) != 1)}: "
              f"{', '.join(names)})")
    else:
        print(f"{args.file}: ok (no service line: the scripted handler answers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
