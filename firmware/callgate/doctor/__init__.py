"""`callgate doctor`: the technician's on-site check of a device.

One check per line of output, each with a plain fix when it fails. The checks,
one module per group:

    checks.py    the Check result and how it is printed (text or --json)
    config.py    the configuration, as `check-config` reads it
    line.py      each line's hardware (or, with no readable config, what hardware
                 there is): found, opened (a modem identified by ATI, a
                 HAT's pins and codec), caller ID reporting, then off hook: audio in,
                 loop current, dial tone and its level, our own audio heard back
    backend.py   the back end, as `callgate crm test` checks it (crm/sitecheck.py)
    system.py    the clock, the time zone, free space on the data partition
    cli.py       the command

A check never prints a secret: the back end's output is the site check's, which
masks what it was given, and configuration errors name keys, not credentials.
"""

from .checks import Check

__all__ = ["Check"]
