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
