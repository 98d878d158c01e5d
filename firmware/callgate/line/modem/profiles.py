"""What differs between the voice modems we support, as data.

Both parts speak V.253, but they disagree on the details: the product code
ATI0 gives, the +VSM compression numbers, whether +VTR (full duplex) works,
and the silence-detection syntax. A profile
is picked from the ATI0/ATI3 answers ("auto") or named in the config.

Sources: the USRobotics and Conexant (CX930xx, host-processed) AT command
references; the product codes are the ones these modems give to ATI0 in the
field (USR5637: "5601"; CX93010-based modems such as the Zoom 3095 and the
StarTech USB56KEMH2: "56000").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModemProfile:
    key: str                        # the config name: line.modem.profile
    title: str
    ati0: tuple[str, ...]           # product codes (ATI0 answer, exact)
    ati3: tuple[str, ...]           # words found in the ATI3 answer (case-insensitive)
    compression: dict[str, str]     # format -> +VSM arguments (8 kHz)
    setup: tuple[str, ...]          # voice-mode set-up after +FCLASS=8, before +VSM
    full_duplex: bool               # +VTR works (listen while we play)
    vls_off_hook: int = 1           # +VLS: the line (telco) connected, off hook
    vls_on_hook: int = 0            # +VLS: DCE on hook
    flash: str = "dial"             # "dial": S29 + ATD!;  "hook": +VLS on, wait, +VLS off hook

    def init_commands(self, fmt: str) -> list[str]:
        """The commands of every init, after reset/echo off: voice mode, caller ID, format.

        +VCID=1 is here, not in the identification, because some parts forget
        it on ATZ and after a call: it is re-sent at every init.
        """
        return ["AT+FCLASS=8", "AT+VCID=1", *self.setup,
                f"AT+VSM={self.compression[fmt]}", f"AT+VLS={self.vls_on_hook}"]


USR5637 = ModemProfile(
    key="usr5637",
    title="USRobotics USR5637 56K USB",
    ati0=("5601",),
    ati3=("U.S. ROBOTICS", "USROBOTICS", "USR5637"),
    # USR voice reference: 128 "8-BIT LINEAR", 131 "ULAW"
    compression={"linear8": "128,8000", "ulaw": "131,8000"},
    setup=("AT+VSD=128,0", "AT+VIT=0"),   # modem silence detection and inactivity timer off
    full_duplex=False,                    # we use it half duplex: +VRX, switch to +VTX to play
)

CX93010 = ModemProfile(
    key="cx93010",
    title="Conexant CX93010-based USB modem",
    ati0=("56000",),
    ati3=("CX93001", "CX93010", "CONEXANT"),
    # CX930xx: 1 "UNSIGNED PCM" (8-bit, offset binary), 4 "G711U"
    compression={"linear8": "1,8000,0,0", "ulaw": "4,8000,0,0"},
    setup=("AT+VSD=0,0", "AT+VIT=0"),
    full_duplex=True,                     # +VTR, ended by <DLE>^
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
