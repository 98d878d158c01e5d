#!/usr/bin/env python3
"""A large directory import: the whole file, and a file whose last row is a mistake.

Run by hand:  .venv/bin/python bench/import_speed.py [--rows 10000] [--scrypt-n 16384]

Writes a CSV of `--rows` customers with a PIN each (the default scrypt cost, as
on the appliance), imports it into a fresh directory and times it; then imports
a second file whose last row names a customer already in the directory and
times how long the refusal takes (before issue 16 it came after every PIN was
hashed). Prints one JSON line per case and the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))

from _machine import machine  # noqa: E402
from callgate.crm.directory import SCRYPT_N, Directory, DirectoryError  # noqa: E402


def write_csv(path: Path, first: int, rows: int, last_id: str | None = None) -> None:
    lines = ["id,name,phones,pin"]
    lines += [f"{first + i},Customer {i},,{1000 + i % 9000}" for i in range(rows)]
    if last_id is not None:
        lines[-1] = f"{last_id},Again,,1234"
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--scrypt-n", type=int, default=SCRYPT_N)
    ap.add_argument("--skip-full", action="store_true", help="only the refused file")
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with Directory(folder / "d.sqlite", scrypt_n=args.scrypt_n) as d:
            seed = folder / "seed.csv"
            write_csv(seed, 10_000_000, 1)
            d.import_csv(seed)
            if not args.skip_full:
                full = folder / "full.csv"
                write_csv(full, 20_000_000, args.rows)
                t0 = time.perf_counter()
                n = d.import_csv(full)
                print(json.dumps({"case": "import", "rows": n, "scrypt_n": args.scrypt_n,
                                  "seconds": round(time.perf_counter() - t0, 2)}))
            clash = folder / "clash.csv"
            write_csv(clash, 30_000_000, args.rows, last_id="10000000")
            t0 = time.perf_counter()
            try:
                d.import_csv(clash)
                said = "imported (unexpected)"
            except DirectoryError as err:
                said = str(err).split(": ", 1)[1]
            print(json.dumps({"case": "clash on the last row", "rows": args.rows,
                              "scrypt_n": args.scrypt_n, "answer": said,
                              "seconds": round(time.perf_counter() - t0, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
