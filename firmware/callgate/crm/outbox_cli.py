"""`callgate outbox list|retry|purge|deliver`: look after the write-back outbox.

The outbox lives in the call-record file ([store] path). `list` never shows a
payload (it may hold a customer's full identifier), only whether one is held.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..store.records import DEFAULT_PATH as DEFAULT_STORE
from ..store.records import store_path


def add_parser(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE",
                        help="TOML configuration ([store] path, [writeback])")
    common.add_argument("--db", metavar="PATH",
                        help=f"call-record file (default: [store] path, else {DEFAULT_STORE})")
    top = sub.add_parser("outbox", help="the write-back outbox (list, retry, purge, deliver)",
                         description="Call outcomes waiting to be written back to the "
                                     "business's back end ([writeback]). Payloads are never "
                                     "printed.")
    top.set_defaults(func=lambda args: (top.print_help(sys.stderr), 2)[1])
    acts = top.add_subparsers(metavar="ACTION")

    lst = acts.add_parser("list", parents=[common], help="rows, newest first")
    lst.add_argument("--state", choices=("pending", "delivered", "dead"))
    lst.add_argument("--limit", type=int, default=50, metavar="N")
    lst.add_argument("--json", action="store_true", help="one JSON object per row")
    lst.set_defaults(func=cmd_outbox, action="list")

    rty = acts.add_parser("retry", parents=[common],
                          help="send dead rows again (all of them, or the IDs given)")
    rty.add_argument("ids", nargs="*", type=int, metavar="ID")
    rty.set_defaults(func=cmd_outbox, action="retry")

    prg = acts.add_parser("purge", parents=[common], help="delete delivered rows")
    prg.add_argument("--dead", action="store_true",
                     help="also delete dead rows (their outcomes are then never sent)")
    prg.set_defaults(func=cmd_outbox, action="purge")

    dlv = acts.add_parser("deliver", parents=[common],
                          help="send what is due now, once, and exit (needs [writeback])")
    dlv.set_defaults(func=cmd_outbox, action="deliver")


def cmd_outbox(args: argparse.Namespace) -> int:
    from ..config import ConfigError, Table, load
    from ..store.outbox import Outbox, iso_utc
    from ..store.records import CallStore, StoreError
    from .writeback import Delivery, load_writeback

    me = f"callgate outbox {args.action}"
    try:
        table = load(args.config) if args.config else Table({})
        path = args.db or store_path(table)
        settings = load_writeback(table.sub("writeback"))
        if args.action == "deliver" and settings is None:
            raise ConfigError("writeback: not configured (or enabled = false) in "
                              f"{args.config or 'the configuration (give --config)'}")
        store = CallStore(path)
    except ConfigError as err:
        print(f"{me}: {err}", file=sys.stderr)
        return 2
    except StoreError as err:
        print(f"{me}: {err}", file=sys.stderr)
        return 1
    try:
        outbox = Outbox(store)
        if args.action == "list":
            for row in outbox.rows(args.state, args.limit):
                if args.json:
                    print(json.dumps(row))
                    continue
                when = row["delivered"] if row["state"] == "delivered" else row["next_at"]
                print("\t".join(str(x) for x in (
                    row["id"], row["call_id"], row["state"], f"attempts={row['attempts']}",
                    f"created={iso_utc(row['created'])}",
                    f"{'delivered' if row['state'] == 'delivered' else 'next'}={iso_utc(when)}",
                    f"status={row['last_status'] or '-'}", row["last_error"] or "-")))
        elif args.action == "retry":
            age = settings.max_age_s if settings else 3 * 86400.0
            n = outbox.retry(args.ids or None, max_age_s=age)
            print(f"{n} row{'s' * (n != 1)} due again")
        elif args.action == "purge":
            n = outbox.purge(dead=args.dead)
            print(f"{n} row{'s' * (n != 1)} deleted")
        else:
            import logging

            logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                                format="callgate outbox: %(message)s")
            delivery = Delivery(outbox, settings)
            try:
                counts = delivery.run_once()
            finally:
                delivery.sender.close()
            print(", ".join(f"{v} {k}" for k, v in counts.items()))
            return 0 if not counts["retry"] and not counts["dead"] else 1
    finally:
        store.close()
    return 0
