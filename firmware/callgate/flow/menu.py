"""The menu after ID&V: one key per destination, an extension or a prompt.

    [service.menu]
    prompt = "menu"              # what the caller hears (a prompt name; required)
    retries = 3                  # tries in all; no input and a key not listed use one
    first_timeout_ms = 5000
    default = "200"              # where the call goes when every try is used up
                                 # (default: the extension of the ID&V outcome)
    [service.menu.keys]
    1 = "210"                    # an extension
    2 = "prompt:opening_hours"   # a prompt, then the menu again

The menu runs after the outcome is known (verified or not), with the same
barge-in, timeouts and retries as the other steps; the key chosen goes to the
record and the screen-pop. An extension chosen here is tried first, then the
service line's fallback chain (`[service.transfer] fallback`, `final`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ConfigError, Table

MENU_KEYS = "0123456789#ABCD"          # not "*": that is the opt-out and clear key
PROMPT_PREFIX = "prompt:"


@dataclass(frozen=True)
class Choice:
    key: str
    extension: str = ""          # either an extension ...
    prompt: str = ""             # ... or a prompt played before the menu comes back


@dataclass(frozen=True)
class Menu:
    prompt: str
    choices: tuple[Choice, ...]
    retries: int = 3
    first_timeout_ms: int = 5000
    default: str = ""            # "" : the outcome's extension

    def choice(self, key: str) -> Choice | None:
        return next((c for c in self.choices if c.key == key), None)

    @property
    def prompts(self) -> tuple[str, ...]:
        return (self.prompt, *(c.prompt for c in self.choices if c.prompt))

    @property
    def extensions(self) -> tuple[str, ...]:
        return tuple(c.extension for c in self.choices if c.extension) + \
            ((self.default,) if self.default else ())


def _name(value: str, key: str) -> str:
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise ConfigError(f"{key}: {value!r} is not a prompt name (letters, digits, - and _)")
    return value


def menu_from_table(table: Table, dtmf: str) -> Menu | None:
    """[service.menu], or None when the service line has no menu."""
    if not table.data:
        return None
    prompt = _name(table.get("prompt", str, "menu"), table.key("prompt"))
    retries = table.get("retries", int, 3)
    if not 1 <= retries <= 10:
        raise ConfigError(f"{table.key('retries')}: {retries} is outside 1..10")
    first = table.get("first_timeout_ms", int, 5000)
    if not 1000 <= first <= 60000:
        raise ConfigError(f"{table.key('first_timeout_ms')}: {first} is outside 1000..60000")
    default = table.get("default", str, "")
    if default and any(c not in dtmf for c in default):
        raise ConfigError(f"{table.key('default')}: {default!r} is not an extension")
    kt = table.sub("keys")
    choices = []
    for key in list(kt.data):
        value = kt.get(key, str)
        if len(key) != 1 or key not in MENU_KEYS:
            raise ConfigError(f"{kt.key(key)}: {key!r} is not one menu key "
                              f"({', '.join(MENU_KEYS)}; \"*\" is the opt-out/clear key)")
        if value.startswith(PROMPT_PREFIX):
            choices.append(Choice(key, prompt=_name(value[len(PROMPT_PREFIX):], kt.key(key))))
        elif value and all(c in dtmf for c in value):
            choices.append(Choice(key, extension=value))
        else:
            raise ConfigError(f"{kt.key(key)}: {value!r} is neither an extension (DTMF "
                              f"digits) nor \"{PROMPT_PREFIX}NAME\"")
    if not choices:
        raise ConfigError(f"{kt.path}: no menu keys (e.g. 1 = \"210\")")
    table.reject_unknown(("prompt", "retries", "first_timeout_ms", "default", "keys"))
    return Menu(prompt, tuple(choices), retries, first, default)
