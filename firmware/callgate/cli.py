"""The `callgate` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .dsp import RATE


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
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
    dec.add_argument("--toneplan", default="us",
                     help="tone plan: us, uk, etsi or a TOML file (default: us)")
    dec.set_defaults(func=cmd_decode)
    return parser


def cmd_decode(args: argparse.Namespace) -> int:
    """Decode each file; a bad file is reported on stderr and the rest go on."""
    from .dsp.decoder import decode
    from .dsp.tones import load_toneplan
    from .wav import WavError, read_wav

    try:
        load_toneplan(args.toneplan)
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
        for event in decode(samples, toneplan=args.toneplan):
            record = {"file": name, "t": round(event.sample / RATE, 3), **event.as_dict()}
            print(_text(record) if args.text else json.dumps(record), flush=False)
        sys.stdout.flush()
    return status


def _text(record: dict) -> str:
    rest = " ".join(f"{k}={v}" for k, v in record.items()
                    if k not in ("file", "t", "event") and v is not None)
    return f"{record['file']}\t{record['t']:9.3f}\t{record['event']:<9}{rest}"


if __name__ == "__main__":
    sys.exit(main())
