"""`callgate simulate` and `callgate replay`: a call through the real code, checked.

Both print a transcript, one JSON object per thing that happened (the README
lists them), then one "check" object per expectation, and exit 0 when every
expectation holds, 1 on a mismatch (stderr names the first one), 2 when a file
is wrong (stderr names the key).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path

EXIT_OK, EXIT_MISMATCH, EXIT_BAD = 0, 1, 2


def add_parser(sub) -> None:
    """Register `simulate` and `replay` on the `callgate` subcommand parsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true",
                        help="JSON lines (the default; kept for scripts that ask for it)")
    common.add_argument("--text", action="store_true", help="aligned text for people instead")
    common.add_argument("--keep", metavar="DIR",
                        help="keep the call records (calls.sqlite) and the back end's files "
                             "in DIR instead of a temporary folder")
    common.add_argument("--verbose", "-v", action="store_true",
                        help="the firmware's own log lines on stderr as well")

    sim = sub.add_parser("simulate", parents=[common],
                         help="run scripted calls on the simulated exchange and check them",
                         description="Run each SCENARIO (TOML: calls, service, back end, "
                                     "expectations) through the engine, the ID&V flow, the "
                                     "back end and a call store; print the transcript and "
                                     "check the expectations. Exit 0: all hold; 1: a "
                                     "mismatch; 2: a bad scenario file.")
    sim.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    sim.add_argument("--realtime", action="store_true",
                     help="run at real speed: the exchange on the wall clock, frames through "
                          "a sound-card-like capture buffer; each call's overruns, late "
                          "frames and largest lag are in the transcript (\"pacing\")")
    sim.add_argument("--telemetry", metavar="FILE",
                     help="push the calls' events and state to the MQTT broker of FILE's "
                          "[telemetry.mqtt], as `run` would (try a broker, Home Assistant "
                          "or `callgate fleet` before a device is installed)")
    sim.set_defaults(func=cmd_simulate)

    rep = sub.add_parser("replay", parents=[common],
                         help="run a recorded call through the flow and check it",
                         description="Play FIXTURE.wav (with its FIXTURE.events.json sidecar) "
                                     "as the line, through the engine, the ID&V flow and the "
                                     "back end; print the transcript and check the "
                                     "expectations (--expect, else FIXTURE.expect.toml).")
    rep.add_argument("wav", metavar="FIXTURE.wav")
    rep.add_argument("--config", metavar="FILE",
                     help="service, back end and engine: a run config or a scenario-style file "
                          "(default: the expectations file)")
    rep.add_argument("--expect", metavar="FILE.toml", help="the expectations ([expect])")
    rep.set_defaults(func=cmd_replay)


@contextmanager
def _logs(verbose: bool, me: str):
    """The firmware's log lines only with --verbose: stderr is for the one-line verdict."""
    logger = logging.getLogger("callgate")
    level, handlers = logger.level, list(logger.handlers)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{me}: %(name)s: %(message)s"))
    if verbose:
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
    else:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)
        logger.handlers[:] = handlers


def _printer(name: str, text: bool, out=None):
    """One transcript line per object; through `out` (a thread's queue) when given, so a
    slow pipe never holds up a realtime call."""
    def emit(obj: dict) -> None:
        line = {"file": name, **obj}
        line = _text(line) if text else json.dumps(line)
        if out is not None:
            out(line)
        else:
            print(line, flush=True)
    return emit


def _text(r: dict) -> str:
    rest = " ".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}"
                    for k, v in r.items()
                    if k not in ("file", "t", "call", "event") and v is not None)
    t = f"{r['t']:9.3f}" if "t" in r else " " * 9
    return f"{t}  call {r.get('call', '-')}  {r['event']:<9} {rest}"


def _verdict(me: str, name: str, result) -> int:
    failed = result.failed
    if not failed:
        return EXIT_OK
    n, c = failed[0]
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    print(f"{me}: {name}: call {n}: {c.what}: expected {c.expected!r}, got {c.got!r}{more}",
          file=sys.stderr)
    return EXIT_MISMATCH


def _checks(emit, result) -> None:
    for n, c in result.checks:
        emit({"call": n, "event": "check", "what": c.what, "pass": c.ok,
              "expected": c.expected, "got": c.got})


def _one(me: str, name: str, run, emit) -> int:
    from ..config import ConfigError
    from ..line.base import LineError
    from ..store.records import StoreError

    try:
        result = run()
    except ConfigError as err:
        print(f"{me}: {name}: {err}", file=sys.stderr)
        return EXIT_BAD
    except (LineError, StoreError, OSError) as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"{me}: {name}: {text}", file=sys.stderr)
        return EXIT_BAD
    _checks(emit, result)
    return _verdict(me, name, result)


def cmd_simulate(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from ..app import lines_off_the_audio_thread, logs_off_the_audio_thread
    from .run import simulate

    me = "callgate simulate"
    status = EXIT_OK
    telemetry = None
    if args.telemetry:
        from ..config import ConfigError, load
        from ..telemetry.settings import load_telemetry

        try:
            telemetry = load_telemetry(load(args.telemetry).sub("telemetry"))
        except ConfigError as err:
            print(f"{me}: {args.telemetry}: {err}", file=sys.stderr)
            return EXIT_BAD
        if telemetry is None:
            print(f"{me}: {args.telemetry}: no [telemetry.mqtt]", file=sys.stderr)
            return EXIT_BAD
    with ExitStack() as stack:
        out = None
        if args.realtime:                # paced: nothing the frame loop does may wait
            out = stack.enter_context(lines_off_the_audio_thread(sys.stdout))
            if args.verbose:
                stack.enter_context(logs_off_the_audio_thread(sys.stderr,
                                                              f"{me}: %(name)s: %(message)s"))
        if not (args.realtime and args.verbose):
            stack.enter_context(_logs(args.verbose, me))
        for name in args.scenarios:
            keep = args.keep
            if keep is not None and len(args.scenarios) > 1:
                keep = Path(keep) / Path(name).stem
            emit = _printer(name, args.text, out)
            code = _one(me, name, lambda: simulate(name, emit, keep, args.realtime,
                                                   telemetry), emit)
            status = max(status, code)
    return status


def cmd_replay(args: argparse.Namespace) -> int:
    from .run import replay

    me = "callgate replay"
    emit = _printer(args.wav, args.text)
    with _logs(args.verbose, me):
        return _one(me, args.wav, lambda: replay(args.wav, emit, args.config, args.expect,
                                                 args.keep), emit)
