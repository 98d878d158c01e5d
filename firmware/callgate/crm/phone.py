"""Phone numbers to E.164, the one form every lookup uses.

Caller ID delivers whatever the exchange sends: 10 national digits, a leading
1 or 0, an international prefix, sometimes nothing useful at all. We accept a
number when its length is possible for its country; we do not insist that the
range be allocated (test and fictional ranges such as 555 must still work).
"""

from __future__ import annotations

import phonenumbers


def normalise_phone(number: str, default_country: str = "US") -> str | None:
    """`number` as E.164 ("+15551234567"), or None when it cannot be a phone number."""
    if not number or not isinstance(number, str):
        return None
    text = number.strip()
    if not any(ch.isdigit() for ch in text):
        return None                       # "O", "P", "Anonymous", ...
    if any(ch.isalpha() for ch in text):
        return None                       # no vanity letters from a caller ID
    try:
        parsed = phonenumbers.parse(text, default_country.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone_forms(e164: str) -> dict[str, str]:
    """The forms a search may use: {e164}, {digits} (no "+"), {national} (national
    significant digits), {country_code} and {tail}, the last 4 national digits: the one
    group that survives however a person formatted the number, for candidate searches
    that are then compared locally (`same_number`)."""
    parsed = phonenumbers.parse(e164, None)
    national = str(parsed.national_number)
    if parsed.italian_leading_zero:
        national = "0" * (parsed.number_of_leading_zeros or 1) + national
    return {"e164": e164, "digits": e164.lstrip("+"), "national": national,
            "country_code": str(parsed.country_code), "tail": national[-4:]}


def same_number(stored: object, e164: str, default_country: str = "US") -> bool:
    """Whether a number as a CRM keeps it ("(646) 555-0134", "646-555-0134 x12",
    "+1 646 555 0134") is the caller's E.164 number. Lenient on purpose: the text was
    typed by a person, an extension is ignored, and national forms are read in the
    business's country."""
    if not isinstance(stored, str) or not any(ch.isdigit() for ch in stored):
        return False
    try:
        parsed = phonenumbers.parse(stored.strip(), default_country.upper())
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == e164
