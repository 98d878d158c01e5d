"""What must never travel over MQTT, and the search of what a broker delivered for it.

The secrets are the scenario library's: every customer's id, phones, PIN and account
(tests/fixtures/customers*.csv, the scenarios' back ends), every calling number a
scenario presents and every run of 3 or more digits a caller keys.
"""

from __future__ import annotations

import csv
import json
import re
import tomllib
from pathlib import Path

HERE = Path(__file__).parent


def library_secrets(scenarios) -> set[str]:
    found: set[str] = set()
    for sheet in (HERE / "fixtures").glob("customers*.csv"):
        with sheet.open(newline="") as f:
            for row in csv.DictReader(f):
                for value in row.values():
                    for part in (value or "").split(";"):
                        digits = re.sub(r"\D", "", part.split(":")[-1])
                        if len(digits) >= 4:
                            found.add(digits)
    for path in scenarios:
        data = tomllib.loads(Path(path).read_text())
        for call in data.get("calls", []):
            number = (call.get("callerid") or {}).get("number")
            if number:
                found.add(re.sub(r"\D", "", number))
            for step in call.get("script", []):
                found |= set(re.findall(r"\d{3,}", str(step.get("press", ""))))
    return found


def _values(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [*obj.keys(), *(s for v in obj.values() for s in _values(v))]
    if isinstance(obj, list):
        return [s for v in obj for s in _values(v)]
    return [str(obj)] if isinstance(obj, int) and not isinstance(obj, bool) else []


def leaks(messages, secrets: set[str]) -> list[tuple[str, str]]:
    """(topic, secret) for every message that carries one. A short secret (a PIN) must
    not be any whole run of digits in a topic or a JSON value; a long one (a number, an
    identifier) must not be inside the digits of the topic or payload at all (a call id's
    13-digit timestamp does not hold an 8-digit identifier by chance)."""
    found = []
    for m in messages:
        raw = m.topic + " " + m.payload.decode("utf-8", "replace")
        try:
            values = _values(json.loads(m.payload)) if m.payload[:1] in b"{[" else [raw]
        except ValueError:
            values = [raw]
        values.append(m.topic)
        runs = {run for v in values for run in re.findall(r"\d+", v)}
        digits = re.sub(r"\D", "", raw)
        for secret in secrets:
            if secret in runs or (len(secret) >= 7 and secret in digits):
                found.append((m.topic, secret))
    return found
