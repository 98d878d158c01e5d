"""`callgate check-config`: a whole config file checked, bad keys and missing prompts named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from callgate.cli import main

PROMPTS = Path(__file__).resolve().parents[1] / "prompts_wav"

GOOD = """
[engine]
rings = 2
[line]
backend = "sim"
[crm]
kind = "directory"
directory = "/tmp/nowhere/directory.sqlite"
default_country = "US"

[[service]]
name = "support"
lines = ["line1"]
[service.identifier]
kind = "customer_id"
min_digits = 8
max_digits = 8
[service.security]
kind = "pin"
retries = 3
[service.transfer]
agent = "200"
verified = "201"
locked = "205"

[[service]]
name = "sales"
number_lookup = false
greet_by_name = true
[service.security]
enabled = false
"""


def check(tmp_path, text, capsys):
    path = tmp_path / "callgate.toml"
    path.write_text(text)
    code = main(["check-config", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_good_config_is_ok(tmp_path, capsys):
    code, text = check(tmp_path, GOOD, capsys)
    assert code == 0, text
    assert "ok (2 service lines: support, sales)" in text
    assert not Path("/tmp/nowhere").exists()          # checking opens no directory file


@pytest.mark.parametrize("old, new, named", [
    ("rings = 2", "rings = 99", "engine.rings: 99 is outside"),
    ('backend = "sim"', 'backend = "fax"', "line.backend: 'fax'"),
    ('kind = "directory"', 'kind = "oracle"', "crm.kind: 'oracle'"),
    ('default_country = "US"', 'default_country = "US"\ncolour = "red"',
     "crm.colour: unknown key"),
    ("retries = 3", "retries = 0", "service.support.security.retries: 0 is outside"),
    ('verified = "201"', 'verified = "20I"', "service.support.transfer.verified"),
    ("max_digits = 8", "max_digit = 8", "service.support.identifier.max_digit: unknown key"),
    ("[engine]", "[enigne]\n[engine]", "enigne: unknown key"),
])
def test_bad_keys_are_named(tmp_path, capsys, old, new, named):
    code, text = check(tmp_path, GOOD.replace(old, new, 1), capsys)
    assert code == 2 and named in text, text
    assert len(text.strip().splitlines()) == 1 and "Traceback" not in text


def test_missing_prompt_is_named(tmp_path, capsys):
    prompts = tmp_path / "prompts"
    shutil.copytree(PROMPTS / "en", prompts / "en")
    (prompts / "en" / "welcome_back.wav").unlink()
    text = GOOD.replace("rings = 2", f'rings = 2\nprompts = "{prompts}"')
    code, out = check(tmp_path, text, capsys)
    assert code == 2 and "service.sales.prompts.welcome_back: no prompt" in out, out
    code, out = check(tmp_path, text.replace("greet_by_name = true", ""), capsys)
    assert code == 0, out
    custom = text.replace("greet_by_name = true",
                          '[service.prompts]\nidentifier = "our_own_id_prompt"')
    code, out = check(tmp_path, custom, capsys)
    assert code == 2 and "service.sales.prompts.identifier: no prompt" in out
    assert "our_own_id_prompt.wav" in out


def test_default_prompt_set_has_every_flow_prompt(tmp_path, capsys):
    from callgate.flow import PROMPT_ROLES
    names = {default for default, _ in PROMPT_ROLES.values() if default}
    assert names <= {p.stem for p in (PROMPTS / "en").glob("*.wav")}


def test_unreadable_file(tmp_path, capsys):
    code = main(["check-config", str(tmp_path / "none.toml")])
    assert code == 2 and "cannot read" in capsys.readouterr().err


def test_simulated_latency_takes_milliseconds_or_measured():
    from callgate.config import ConfigError, Table
    from callgate.flow import policy_from_table

    assert policy_from_table(Table({}, "service.s"), "s").simulated_latency_ms == 40
    assert policy_from_table(Table({"simulated_latency_ms": 250}, "service.s"),
                             "s").simulated_latency_ms == 250
    assert policy_from_table(Table({"simulated_latency_ms": "measured"}, "service.s"),
                             "s").simulated_latency_ms is None
    with pytest.raises(ConfigError, match="simulated_latency_ms"):
        policy_from_table(Table({"simulated_latency_ms": "slow"}, "service.s"), "s")


# ---------------------------------------------------------------- issue 15: new tables

NEW = GOOD.replace('verified = "201"\nlocked = "205"\n', '''verified = "201"
locked = "205"
fallback = ["210"]
final = "0"
[service.hours]
timezone = "Europe/London"
mon = "09:00-17:30"
fri = ["09:00-12:30", "13:30-17:00"]
closed = ["2026-12-25"]
after_hours = "300"
[service.menu]
prompt = "menu"
[service.menu.keys]
1 = "210"
2 = "prompt:opening_hours"
''')


def test_hours_menu_and_fallback_are_ok(tmp_path, capsys):
    code, text = check(tmp_path, NEW, capsys)
    assert code == 0 and "ok (2 service lines" in text, text
    warnings = [x.split("warning: ")[1] for x in text.splitlines() if "warning" in x]
    assert warnings == [
        "service.support.transfer.verified: reached only when the caller chooses no key in "
        "the menu (menu.outcomes offers verified the menu)",
        "service.support.transfer.fallback: never tried in blind mode (a blind transfer "
        "hears no busy, no answer or refusal, and no recall dial tone is the line's fault); "
        "transfer.mode = \"supervised\" tries it"], text
    supervised = NEW.replace("[service.menu.keys]", '[service.menu.keys]').replace(
        'fallback = ["210"]', 'fallback = ["210"]\nmode = "supervised"').replace(
        'prompt = "menu"', 'prompt = "menu"\noutcomes = ["identified"]')
    code, text = check(tmp_path, supervised, capsys)
    assert code == 0 and "warning" not in text, text


@pytest.mark.parametrize("old, new, named", [
    ('mon = "09:00-17:30"', 'mon = "09:00-17:30"\nmonday = "09:00-12:00"',
     "service.support.hours.monday: unknown key"),
    ('mon = "09:00-17:30"', 'mon = "17:30-09:00"', "service.support.hours.mon: '17:30-09:00' "
     "ends before it starts"),
    ('mon = "09:00-17:30"', 'mon = "9h-17h"', "service.support.hours.mon: '9h' is not a time"),
    ('timezone = "Europe/London"', 'timezone = "Mars/Olympus"',
     "service.support.hours.timezone: 'Mars/Olympus' is not a known time zone"),
    ('closed = ["2026-12-25"]', 'closed = ["25/12/2026"]', "service.support.hours.closed: "
     "'25/12/2026' is not a date"),
    ('after_hours = "300"', 'after_hours = "reception"', "service.support.hours.after_hours"),
    ('1 = "210"', '1 = "210"\n"*" = "220"', "service.support.menu.keys.*: '*' is not one "
     "menu key"),
    ('2 = "prompt:opening_hours"', '2 = "opening hours"', "service.support.menu.keys.2: "
     "'opening hours' is neither an extension"),
    ('prompt = "menu"', 'prompt = "menu"\ntimeout_ms = 5', "service.support.menu.timeout_ms: "
     "unknown key"),
    ('fallback = ["210"]', 'fallback = ["21O"]', "service.support.transfer.fallback: "
     "expected a list of extensions"),
    ('fallback = ["210"]', 'fallback = { verified = ["210"], vip = ["220"] }',
     "service.support.transfer.fallback.vip: unknown outcome"),
    ('final = "0"', 'final = "operator"', "service.support.transfer.final"),
    # hostile values (review of issue 15): refused, never read leniently
    ('closed = ["2026-12-25"]', 'closed = [20261225]', "service.support.hours.closed: "
     "20261225 is not a date"),
    ('closed = ["2026-12-25"]', 'closed = ["20261225"]', "service.support.hours.closed: "
     "'20261225' is not a date"),
    ('closed = ["2026-12-25"]', 'closed = ["2026-W52-5"]', "service.support.hours.closed: "
     "'2026-W52-5' is not a date"),
    ('mon = "09:00-17:30"', 'mon = "+9:00-10:00"', "service.support.hours.mon: '+9:00' is "
     "not a time"),
    ('mon = "09:00-17:30"', 'mon = "\u0660\u0669:00-17:30"', "service.support.hours.mon: "
     "'\u0660\u0669:00' is not a time"),
    ('mon = "09:00-17:30"', 'mon = "9:5-17:30"', "service.support.hours.mon: '9:5' is not "
     "a time"),
    ('fri = ["09:00-12:30", "13:30-17:00"]', 'fri = ["09:00-12:30", "12:00-17:00"]',
     "service.support.hours.fri: 09:00-12:30 and 12:00-17:00 overlap"),
    ('prompt = "menu"', 'prompt = "menu"\noutcomes = ["verified", "vip"]',
     "service.support.menu.outcomes: 'vip' is not an outcome"),
    ('prompt = "menu"', 'prompt = "m\u00e9nu"', "service.support.menu.prompt: 'm\u00e9nu' "
     "is not a prompt name"),
])
def test_bad_new_keys_are_named(tmp_path, capsys, old, new, named):
    assert old in NEW
    code, text = check(tmp_path, NEW.replace(old, new, 1), capsys)
    assert code == 2 and named in text, text
    assert len(text.strip().splitlines()) == 1 and "Traceback" not in text


@pytest.mark.parametrize("drop, key", [
    ("menu.wav", "service.support.menu.prompt: no prompt"),
    ("opening_hours.wav", "service.support.menu.keys.2: no prompt"),
    ("closed.wav", "service.support.prompts.closed: no prompt"),
    ("call_back_later.wav", "service.support.prompts.unavailable: no prompt"),
])
def test_a_prompt_the_new_steps_need_is_named_when_missing(tmp_path, capsys, drop, key):
    prompts = tmp_path / "prompts"
    shutil.copytree(PROMPTS / "en", prompts / "en")
    (prompts / "en" / drop).unlink()
    text = NEW.replace("rings = 2", f'rings = 2\nprompts = "{prompts}"')
    code, out = check(tmp_path, text, capsys)
    assert code == 2 and key in out, out


def test_hours_without_a_closed_message_are_refused(tmp_path, capsys):
    text = NEW.replace("[service.menu]", '[service.prompts]\nclosed = ""\n[service.menu]')
    code, out = check(tmp_path, text, capsys)
    assert code == 2 and "service.support.prompts.closed: [service.hours] needs" in out, out


def test_destinations_no_call_can_reach_are_named(tmp_path, capsys):
    text = NEW.replace("greet_by_name = true", 'greet_by_name = true\nopt_out_key = ""') + '''
[service.transfer]
locked = "305"
opted_out = "304"
verified = "301"
no_secret = "306"
'''
    code, out = check(tmp_path, text, capsys)
    assert code == 0, out
    warnings = [x for x in out.splitlines() if "warning: service.sales" in x]
    assert len(warnings) == 4, out
    for key, why in (("locked", "security is off"), ("no_secret", "security is off"),
                     ("verified", "no caller is verified"),
                     ("opted_out", "there is no opt-out key")):
        assert any(f"service.sales.transfer.{key}: no call can reach it" in w and why in w
                   for w in warnings), (key, out)


def test_per_outcome_fallbacks_and_a_menu_default_can_leave_destinations_unreachable(
        tmp_path, capsys):
    text = NEW.replace('fallback = ["210"]', 'fallback = { verified = ["210"] }').replace(
        'prompt = "menu"', 'prompt = "menu"\ndefault = "200"').replace(
        "[service.security]\nenabled = false", '''[service.security]
enabled = false
[service.transfer]
fallback = { locked = ["220"], identified = ["221"] }''')
    code, out = check(tmp_path, text, capsys)
    assert code == 0, out
    warnings = sorted(x.split("warning: ")[1] for x in out.splitlines()
                      if "warning" in x and "blind mode" not in x)
    assert warnings == [
        "service.sales.transfer.fallback.locked: no call can reach it (security is off)",
        "service.support.transfer.verified: no call can reach it (its callers get the "
        "menu, menu.default when no key is chosen)"], out     # locked keeps its own


def test_hours_without_a_timezone_take_the_zone_they_are_given():
    """The device's zone is found outside flow/ (callgate/localzone.py) and passed in: the
    flow reads neither $TZ nor /etc/localtime."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from callgate.config import Table
    from callgate.flow import load_services
    from callgate.flow import hours as hours_module

    data = {"service": [{"name": "s", "hours": {"mon": "09:00-17:00"}}]}
    tokyo = (ZoneInfo("Asia/Tokyo"), "Asia/Tokyo")
    (p,) = load_services(Table(data), "US", tokyo)
    assert p.hours.zone_name == "Asia/Tokyo"
    # 09:30 Monday in Tokyo is 00:30 UTC: open there
    wall = dt.datetime(2026, 12, 7, 0, 30, tzinfo=dt.timezone.utc).timestamp()
    assert p.hours.state(wall) == "open"
    (utc,) = load_services(Table(data))
    assert utc.hours.zone_name == "UTC" and utc.hours.state(wall) == "closed"
    assert not hasattr(hours_module, "device_zone") and not hasattr(hours_module, "os")
