"""What differs between the voice modems we support, as data.

Both parts speak V.253, but they disagree on the details: the product code
ATI0 gives, the +VSM compression numbers, whether +VTR (full duplex) works,
and the silence-detection syntax. A profile is picked from the ATI0/ATI3
answers ("auto") or named in the config.

The +VSM numbers are asked of the modem at every init (AT+VSM=?) and chosen
by name from what it offers (VSM_NAMES); a profile's `compression` is only
the fallback for a part that will not list them. Each value below names the
reference it comes from:

- [USR]: USRobotics 56K command reference, Voice Commands, +VSM (the
  AT+VSM=? example: 1 UNSIGNED PCM, 128 8-BIT LINEAR, 129 ADPCM,
  130 UNSIGNED PCM, 131 ULAW, 132 ALAW, 133 LINEAR), +VSD, and Table 6-2
  (<DLE> codes sent to the DTE).
- [CX]: Conexant "Commands for Host-Processed and Host-Controlled Modems"
  reference (100498E), 5.2.2.13 +VSM (<cml> 1, 128 to 133; ULAW 131),
  +VSD, +VTR, +VLS; a bench note on a real CX93001 part (issue 17) adds 0
  to the list and answers ERROR to +VSM=4.
- Product codes: what these modems give to ATI0 in the field (USR5637:
  "5601"; CX93010-based modems such as the Zoom 3095 and the StarTech
  USB56KEMH2: "56000", in the peer call screener's modem logs).
- USB ids: what `lsusb` shows for the products in users' logs (0baf:0303
  "U.S. Robotics USR5637 56K Faxmodem"; 0572:1349 "Conexant USB Modem" on
  the StarTech USB56KEMH2; 0803:3095 "Zoom Telephonics" on the Zoom 3095).
  `usb_ids()` lists them for the image's udev rule (tools/image/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# format -> the +VSM=? method names that carry it at 8 bits a sample [USR] [CX]
VSM_NAMES = {"ulaw": ("ULAW", "G711U", "G.711U", "MU-LAW"),
             "linear8": ("UNSIGNED PCM", "8-BIT LINEAR")}
_VSM_LINE = re.compile(r'^(?:\+VSM:\s*)?(\d+)\s*,\s*"?([^",]*?)"?\s*,\s*(\d+)')


@dataclass(frozen=True)
class UsbId:
    vendor: str                     # 4 hex digits, as lsusb and udev's ATTRS{idVendor} spell it
    product: str
    name: str                       # the product as sold


@dataclass(frozen=True)
class ModemProfile:
    key: str                        # the config name: line.modem.profile
    title: str
    ati0: tuple[str, ...]           # product codes (ATI0 answer, exact)
    ati3: tuple[str, ...]           # words found in the ATI3 answer (case-insensitive)
    compression: dict[str, int]     # format -> +VSM <cml> when AT+VSM=? lists nothing
    vsm_args: str                   # what follows <cml> in AT+VSM=: the rate and the rest
    setup: tuple[str, ...]          # voice-mode set-up after +FCLASS=8, before +VSM
    full_duplex: bool               # +VTR works (listen while we play)
    usb: tuple[UsbId, ...] = ()     # the products we know carry this part
    vls_off_hook: int = 1           # +VLS: the line (telco) connected, off hook
    vls_on_hook: int = 0            # +VLS: DCE on hook
    flash: str = "dial"             # "dial": S29 + ATD!;  "hook": +VLS on, wait, +VLS off hook

    def vsm_command(self, fmt: str, offered: dict[int, tuple[str, int]] | None = None) -> str:
        """AT+VSM=... for `fmt`: ours if the modem offers it under that name, else the
        first it offers under that name; ours when it lists nothing.

        ValueError (naming what it offers) if it listed methods and none is `fmt`.
        """
        cml = self.compression[fmt]
        if offered:
            names = VSM_NAMES[fmt]
            found = [c for c, (name, bits) in sorted(offered.items())
                     if bits == 8 and name.upper() in names]
            if not found:
                listed = ", ".join(f"{c} {name}" for c, (name, _) in sorted(offered.items()))
                raise ValueError(f"the modem offers no {fmt} (AT+VSM=? lists {listed})")
            preferred = [c for n in names for c in found if offered[c][0].upper() == n]
            cml = cml if cml in found else preferred[0]
        return f"AT+VSM={cml},{self.vsm_args}"


def parse_vsm_list(lines: list[str]) -> dict[int, tuple[str, int]]:
    """AT+VSM=? answer lines -> {cml: (name, bits per sample)}; lines not of that shape skipped."""
    out: dict[int, tuple[str, int]] = {}
    for line in lines:
        match = _VSM_LINE.match(line.strip())
        if match:
            out[int(match.group(1))] = (match.group(2).strip(), int(match.group(3)))
    return out


USR5637 = ModemProfile(
    key="usr5637",
    title="USRobotics USR5637 56K USB",
    ati0=("5601",),
    ati3=("U.S. ROBOTICS", "USROBOTICS", "USR5637"),
    compression={"linear8": 128, "ulaw": 131},          # [USR] +VSM: 128 8-BIT LINEAR, 131 ULAW
    vsm_args="8000",                                     # [USR] <vsr> 7200 or 8000
    setup=("AT+VSD=128,0", "AT+VIT=0"),   # [USR] +VSD, +VIT: silence detection, inactivity timer off
    full_duplex=False,                    # we use it half duplex: +VRX, switch to +VTX to play
    usb=(UsbId("0baf", "0303", "USRobotics USR5637 56K USB Faxmodem"),),
)

CX93010 = ModemProfile(
    key="cx93010",
    title="Conexant CX93010-based USB modem",
    ati0=("56000",),
    ati3=("CX93001", "CX93010", "CONEXANT"),
    compression={"linear8": 1, "ulaw": 131},            # [CX] +VSM: 1 UNSIGNED PCM, 131 ULAW
    vsm_args="8000,0,0",                                 # [CX] +VSM=<cml>,<vsr>,<sds>,<sel>
    setup=("AT+VSD=0,0", "AT+VIT=0"),                    # [CX] +VSD, +VIT
    full_duplex=True,                     # [CX] +VTR, ended by <DLE>^
    usb=(UsbId("0572", "1349", "StarTech USB56KEMH2 (Conexant USB modem)"),
         UsbId("0803", "3095", "Zoom 3095 USB Mini External Modem")),
)

PROFILES = {p.key: p for p in (USR5637, CX93010)}


def identify(ati0: str, ati3: str) -> ModemProfile | None:
    """The profile for a modem's ATI0/ATI3 answers, or None if it is not one we know."""
    code = ati0.strip()
    for profile in PROFILES.values():
        if code in profile.ati0:
            return profile
    text = ati3.upper()
    for profile in PROFILES.values():
        if any(word in text for word in profile.ati3):
            return profile
    return None


def usb_ids() -> list[UsbId]:
    """Every supported modem's USB vendor:product id: the image's udev rule is made from these."""
    return [usb for profile in PROFILES.values() for usb in profile.usb]
