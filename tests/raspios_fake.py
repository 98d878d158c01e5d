"""A fake Raspberry Pi OS Lite arm64 image with the official layout, for tools/build-image.

MBR with disk id DISK_ID; partition 1 FAT32 labelled `bootfs` (cmdline.txt,
config.txt) from 4 MiB; partition 2 ext4 labelled `rootfs` (os-release as a
symlink, fstab by PARTUUID, the accounts, a stub /usr/bin/python3.11, a setuid
file and an extended attribute that an honest edit must keep, Raspberry Pi OS's
own watchdog drop-in). Nothing in it runs: it is the shape build-image reads.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

DISK_ID = "0x5e3f8a21"
SECTOR = 512
MIB = 1024 * 1024
BOOT_START = 8192                   # sectors: 4 MiB, as the official images
BOOT_MIB = 64
ROOT_MIB = 96                       # too small for callgate: build-image must grow it

CMDLINE = (f"console=serial0,115200 console=tty1 root=PARTUUID={DISK_ID[2:]}-02 rootfstype=ext4 "
           "fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot resize\n")
CONFIG_TXT = "# For more options and information see the docs\ndtparam=audio=on\ncamera_auto_detect=1\n" \
             "auto_initramfs=1\narm_64bit=1\n\n[cm4]\notg_mode=1\n\n[all]\n"
FSTAB = (f"proc            /proc           proc    defaults          0       0\n"
         f"PARTUUID={DISK_ID[2:]}-01  /boot/firmware  vfat    defaults          0       2\n"
         f"PARTUUID={DISK_ID[2:]}-02  /               ext4    defaults,noatime  0       1\n")
OS_RELEASE = {
    "bookworm": ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                 'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'),
    "bullseye": ('PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nVERSION_CODENAME=bullseye\nID=debian\n'),
}
PASSWD = ("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
          "systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin\n"
          "pi:x:1000:1000:,,,:/home/pi:/bin/bash\n")
GROUP = ("root:x:0:\ndaemon:x:1:\nshadow:x:42:\ndialout:x:20:pi\naudio:x:29:pi\n"
         "systemd-network:x:998:\ngpio:x:997:pi\npi:x:1000:\n")
SHADOW = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\npi:!:19000:0:99999:7:::\n"
GSHADOW = "root:*::\nshadow:*::\ndialout:*::pi\naudio:*::pi\ngpio:!::pi\npi:!::\n"
DPKG_STATUS = ("Package: libc6\nStatus: install ok installed\nArchitecture: arm64\n"
               "Version: 2.36-9+rpt2+deb12u9\n\n"
               "Package: python3.11\nStatus: install ok installed\nArchitecture: arm64\n"
               "Version: 3.11.2-6+deb12u6\n\n")
RPI_WATCHDOG = "[Manager]\nRuntimeWatchdogSec=16\nRebootWatchdogSec=1m\n"
XATTR = ("user.callgate-fake", "kept")


def elf_header(machine: int) -> bytes:
    """The first bytes of a 64-bit little-endian ELF executable for `machine` (183 arm64, 40 arm)."""
    return b"\x7fELF\x02\x01\x01" + b"\0" * 9 + (2).to_bytes(2, "little") + machine.to_bytes(2, "little")


def _root_tree(top: Path, release: str, python_machine: int | None) -> None:
    files = {
        "usr/lib/os-release": OS_RELEASE[release],
        "etc/fstab": FSTAB,
        "etc/passwd": PASSWD,
        "etc/group": GROUP,
        "etc/shadow": SHADOW,
        "etc/gshadow": GSHADOW,
        "etc/hostname": "raspberrypi\n",
        "var/lib/dpkg/status": DPKG_STATUS,
        "usr/lib/systemd/system.conf.d/70-rpi-enable-watchdog.conf": RPI_WATCHDOG,
        "usr/bin/python3.11": "#!/bin/false\n# stub: build-image never runs the target's python\n",
        "usr/bin/su": "#!/bin/false\n# stub of a setuid program\n",
        "usr/bin/ping": "#!/bin/false\n# stub of a program with an extended attribute\n",
    }
    for name, text in files.items():
        path = top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for d in ("etc/systemd/system/multi-user.target.wants", "opt", "var/lib", "var/log",
              "boot/firmware", "home/pi"):
        (top / d).mkdir(parents=True, exist_ok=True)
    if python_machine is not None:
        (top / "usr/bin/python3.11").write_bytes(elf_header(python_machine))
    (top / "etc/os-release").symlink_to("../usr/lib/os-release")
    (top / "usr/bin/python3").symlink_to("python3.11")


def make_image(path: Path, work: Path, release: str = "bookworm",
               python_machine: int | None = None) -> Path:
    """Write the fake image to `path` (a plain .img); returns it."""
    work.mkdir(parents=True, exist_ok=True)
    boot, root, tree = work / "boot.vfat", work / "root.ext4", work / "rootfs"
    boot.write_bytes(b"")
    with open(boot, "wb") as fh:
        fh.truncate(BOOT_MIB * MIB)
    subprocess.run(["mkfs.vfat", "-F", "32", "-n", "bootfs", str(boot)], check=True,
                   capture_output=True)
    for name, text in (("cmdline.txt", CMDLINE), ("config.txt", CONFIG_TXT)):
        (work / name).write_text(text)
        subprocess.run(["mcopy", "-i", str(boot), str(work / name), f"::{name}"], check=True,
                       env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    _root_tree(tree, release, python_machine)
    with open(root, "wb") as fh:
        fh.truncate(ROOT_MIB * MIB)
    # the fake's own root may be made with -d: it is not the official one being edited
    subprocess.run(["mkfs.ext4", "-F", "-q", "-L", "rootfs", "-E", "root_owner=0:0", "-d", str(tree),
                    str(root)], check=True)
    debugfs = "\n".join([
        "sif /usr/bin/su mode 0104755",
        f"ea_set /usr/bin/ping {XATTR[0]} {XATTR[1]}",
        "sif /etc/shadow mode 0100640", "sif /etc/shadow gid 42",
        "sif /etc/gshadow mode 0100640", "sif /etc/gshadow gid 42",
        "sif /home/pi uid 1000", "sif /home/pi gid 1000",
    ]) + "\n"
    subprocess.run(["debugfs", "-w", "-f", "-", str(root)], input=debugfs, text=True, check=True,
                   capture_output=True)
    root_start = BOOT_START + BOOT_MIB * MIB // SECTOR
    total = root_start * SECTOR + ROOT_MIB * MIB
    with open(path, "wb") as img:
        img.truncate(total)
        for start, part in ((BOOT_START, boot), (root_start, root)):
            img.seek(start * SECTOR)
            img.write(part.read_bytes())
    table = (f"label: dos\nlabel-id: {DISK_ID}\nunit: sectors\n\n"
             f"start={BOOT_START}, size={BOOT_MIB * MIB // SECTOR}, type=c\n"
             f"start={root_start}, size={ROOT_MIB * MIB // SECTOR}, type=83\n")
    subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", "--wipe", "never", str(path)],
                   input=table, text=True, check=True, capture_output=True)
    return path
