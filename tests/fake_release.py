"""A fake callgate release, as a real wheel file (PEP 427 layout), for the update tests.

Its `callgate --version` answers like the real one; `callgate run` and `callgate web`
either start as a Type=notify service does (READY=1 over $NOTIFY_SOCKET, then run
until SIGTERM) or, for a broken release, fail before READY the way a bad config or a
missing dependency makes the real one fail. Installing the real firmware with numpy
and scipy into a fresh venv per test would take minutes; what the updater does with a
release (install, switch, restart, judge READY, roll back) is the same.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

CLI = '''\
import os, signal, socket, sys, time

VERSION = {version!r}
STARTS = {starts!r}


def main():
    args = sys.argv[1:]
    if args == ["--version"]:
        print("callgate " + VERSION)
        return 0
    if not STARTS:
        print("callgate " + (args[0] if args else "") + ": fake broken release, failing "
              "before READY", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    where = os.environ.get("NOTIFY_SOCKET", "")
    if where:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect("\\0" + where[1:] if where.startswith("@") else where)
            s.sendall(("READY=1\\nSTATUS=fake release " + VERSION).encode())
    while True:
        signal.pause()
'''


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(folder: Path, version: str, starts: bool) -> Path:
    """callgate-VERSION-py3-none-any.whl in `folder`."""
    dist = f"callgate-{version}.dist-info"
    files = {
        "callgate/__init__.py": f"__version__ = {version!r}\n".encode(),
        "callgate/cli.py": CLI.format(version=version, starts=starts).encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: callgate\nVersion: {version}\n"
                            "Summary: fake release for the update tests\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: fake_release\n"
                         b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": b"[console_scripts]\ncallgate = callgate.cli:main\n",
    }
    record = "\n".join([*(_record_line(n, d) for n, d in files.items()), f"{dist}/RECORD,,"])
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"callgate-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(f"{dist}/RECORD", record + "\n")
    return out
