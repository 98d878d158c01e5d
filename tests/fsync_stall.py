"""A disk that takes its time: the fsync-stall shim (tests/helpers/fsync_stall.c).

LD_PRELOADed into a child process, it makes every fsync, fdatasync and
sync_file_range sleep first and logs which thread asked, so a test or a bench
can show that a slow disk stalls a writer thread and never the audio thread.
It is compiled on first use into tests/helpers/bin/, like the libspandsp helper
in tests/external.py. Plain functions, no pytest, so bench/ can use them too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HELPERS = Path(__file__).resolve().parent / "helpers"
SOURCE = HELPERS / "fsync_stall.c"
CACHE = HELPERS / "bin"


class CompilerMissing(RuntimeError):
    """No C compiler to build the shim with."""


def build_shim(out_dir: str | Path | None = None) -> Path:
    """Path of the compiled shim in out_dir (default the cache), building it when stale.

    Built under a temporary name and renamed, so two test processes building
    at once never load a half-written library.
    """
    out_dir = Path(out_dir) if out_dir is not None else CACHE
    lib = out_dir / "fsync_stall.so"
    if lib.exists() and lib.stat().st_mtime >= SOURCE.stat().st_mtime:
        return lib
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise CompilerMissing("no C compiler (cc/gcc); run tools/test, which installs gcc")
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
    os.close(fd)
    try:
        subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", tmp, str(SOURCE), "-ldl"],
                       check=True, capture_output=True)
        os.chmod(tmp, 0o755)
        os.replace(tmp, lib)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib


def fsync_stall_env(tmp_path: str | Path, ms: int = 200, base: dict | None = None,
                    lib: str | Path | None = None) -> dict[str, str]:
    """Environment for a child process whose fsyncs each stall `ms` milliseconds.

    The call log is env["FSYNC_STALL_LOG"] (tmp_path/fsync.log); read it with
    fsync_calls(). Any LD_PRELOAD already set is kept, after the shim.
    """
    env = dict(os.environ if base is None else base)
    lib = Path(lib) if lib is not None else build_shim()
    preload = env.get("LD_PRELOAD", "")
    env["LD_PRELOAD"] = f"{lib} {preload}".strip()
    env["FSYNC_STALL_MS"] = str(int(ms))
    env["FSYNC_STALL_LOG"] = str(Path(tmp_path) / "fsync.log")
    return env


def fsync_calls(log_path: str | Path) -> list[tuple[int, int, int, int]]:
    """The logged calls as (tid, pid, fd, ms); none when nothing synced (no log file)."""
    path = Path(log_path)
    if not path.exists():
        return []
    calls = []
    for row in path.read_text().splitlines():
        if row.strip():
            tid, pid, fd, ms = (int(x) for x in row.split())
            calls.append((tid, pid, fd, ms))
    return calls
