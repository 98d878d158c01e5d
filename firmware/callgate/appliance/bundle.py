"""An update bundle: one tar file with a wheelhouse, the data trees and a manifest of hashes.

    manifest.json            {"format": 1, "name": "callgate", "version": "0.2.0",
                              "files": {"wheels/callgate-0.2.0-py3-none-any.whl":
                                        {"sha256": "...", "size": 12345}, ...}}
    wheels/*.whl             callgate and every dependency, for the device's Python
    data/hw/...              hw/ and prompts_wav/, installed inside the release
    data/prompts_wav/...

`tools/build-bundle` writes one (`write`); `callgate update` opens it (`extract`):
every member must be a plain file listed in the manifest with its size and
sha256, none missing and none extra, or nothing is installed. The hashes catch
a damaged or truncated copy; they do not prove who made the bundle.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MANIFEST = "manifest.json"
FORMAT = 1
NAME = "callgate"
_WHEEL = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[A-Za-z0-9_.+!]+)(-\d[^-]*)?"
                    r"-[^-]+-[^-]+-[^-]+\.whl$")
_VERSION = re.compile(r"^[0-9][A-Za-z0-9.+!-]{0,63}$")


class BundleError(Exception):
    """A bundle that cannot be installed; str() is one line naming what is wrong."""


@dataclass(frozen=True)
class Manifest:
    version: str
    files: dict[str, dict]            # bundle path -> {"sha256", "size"}

    @property
    def wheels(self) -> list[str]:
        return sorted(p for p in self.files if p.startswith("wheels/"))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def wheel_name_version(file_name: str) -> tuple[str, str]:
    found = _WHEEL.match(file_name)
    if not found:
        raise BundleError(f"{file_name}: not a wheel file name")
    return found["name"], found["version"]


def write(out: Path, wheels: list[Path], data: dict[str, Path]) -> Manifest:
    """The bundle at `out` from wheel files and data trees (name -> folder)."""
    members: dict[str, Path] = {}
    for w in wheels:
        members[f"wheels/{w.name}"] = w
    for name, folder in data.items():
        for f in sorted(folder.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                members[f"data/{name}/{f.relative_to(folder).as_posix()}"] = f
    versions = [wheel_name_version(w.name)[1] for w in wheels
                if wheel_name_version(w.name)[0].lower() == NAME]
    if len(versions) != 1:
        raise BundleError(f"the wheelhouse needs exactly one {NAME} wheel, found {len(versions)}")
    manifest = Manifest(versions[0], {name: {"sha256": sha256(p), "size": p.stat().st_size}
                                      for name, p in sorted(members.items())})
    text = json.dumps({"format": FORMAT, "name": NAME, "version": manifest.version,
                       "files": manifest.files}, indent=1, sort_keys=True).encode()
    with tarfile.open(out, "w") as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(text), 0o644
        tar.addfile(info, io.BytesIO(text))
        for name, p in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = p.stat().st_size, 0o644
            with open(p, "rb") as f:
                tar.addfile(info, f)
    return manifest


def extract(bundle: Path, into: Path) -> Manifest:
    """Check the bundle against its manifest and unpack it into `into`; BundleError if any
    member is missing, extra, not a plain file, or differs from its hash."""
    try:
        tar = tarfile.open(bundle, "r:*")
    except (OSError, tarfile.TarError) as err:
        raise BundleError(f"{bundle}: not a bundle ({getattr(err, 'strerror', None) or err})") \
            from None
    with tar:
        try:
            manifest = _manifest(tar)
            seen = set()
            for member in tar:
                if member.name == MANIFEST:
                    continue
                name = _safe(member.name)
                if not member.isreg():
                    raise BundleError(f"{name}: not a plain file")
                if name not in manifest.files or name in seen:
                    raise BundleError(f"{name}: not in the manifest")
                seen.add(name)
                target = into / name
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                h = hashlib.sha256()
                size = 0
                with open(target, "wb") as out:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        h.update(block)
                        size += len(block)
                        out.write(block)
                want = manifest.files[name]
                if size != want["size"] or h.hexdigest() != want["sha256"]:
                    raise BundleError(f"{name}: does not match its sha256 in the manifest "
                                      "(a damaged copy?)")
        except (OSError, tarfile.TarError, EOFError) as err:
            raise BundleError(f"{bundle}: cannot be read ({err})") from None
    missing = sorted(set(manifest.files) - seen)
    if missing:
        raise BundleError(f"{missing[0]}: in the manifest but not in the bundle")
    return manifest


def _manifest(tar: tarfile.TarFile) -> Manifest:
    try:
        member = tar.getmember(MANIFEST)
        data = json.loads(tar.extractfile(member).read(1 << 20))
    except (KeyError, AttributeError):
        raise BundleError(f"no {MANIFEST}") from None
    except ValueError:
        raise BundleError(f"{MANIFEST}: not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("name") != NAME:
        raise BundleError(f"{MANIFEST}: not a format {FORMAT} {NAME} manifest")
    version, files = data.get("version"), data.get("files")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise BundleError(f"{MANIFEST}: version {version!r} is not a version")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{MANIFEST}: no files")
    for name, entry in files.items():
        _safe(name)
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
                and isinstance(entry.get("size"), int)):
            raise BundleError(f"{MANIFEST}: {name}: needs a sha256 and a size")
    manifest = Manifest(version, files)
    mine = [w for w in manifest.wheels
            if wheel_name_version(PurePosixPath(w).name) == (NAME, version)]
    if len(mine) != 1:
        raise BundleError(f"{MANIFEST}: no {NAME} {version} wheel among the files")
    return manifest


def _safe(name: str) -> str:
    """A member name that stays inside the release: wheels/X.whl or data/(hw|prompts_wav)/..."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise BundleError(f"{name}: a path outside the bundle")
    ok = (len(p.parts) == 2 and p.parts[0] == "wheels" and p.suffix == ".whl") or \
        (len(p.parts) >= 3 and p.parts[0] == "data" and p.parts[1] in ("hw", "prompts_wav"))
    if not ok:
        raise BundleError(f"{name}: not a wheel or a data file")
    return p.as_posix()
