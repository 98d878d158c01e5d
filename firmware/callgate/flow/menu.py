"""The menu after ID&V: one key per destination, an extension or a prompt.

    [service.menu]
    prompt = "menu"              # what the caller hears (a prompt name; required)
    retries = 3                  # tries in all; no input and a key not listed use one
    first_timeout_ms = 5000
    default = "200"              # where the call goes when every try is used up
                                 # (default: the extension of the ID&V outcome)
    outcomes = ["verified", "identified"]   # the ID&V outcomes offered the menu (this
                                 # default); the others go to their own extension
    [service.menu.keys]
    1 = "210"                    # an extension
    2 = "prompt:opening_hours"   # a prompt, then the menu again

The menu runs after the outcome is known, for the outcomes in `outcomes` only:
a locked, opted-out or back-end-down caller (or anyone identified only with no
secret on file) goes where [service.transfer] sends that outcome, and no key
takes them past it (a locked caller may be a fraudster). It has the same
barge-in, timeouts and retries as the other steps; the key chosen goes to the
record and the screen-pop. An extension chosen here is tried first, then the
service line's fallback chain (`[service.transfer] fallback`, `final`). A
`prompt:` key does not use a try, but the menu comes back at most
MAX_PROMPT_CHOICES times; past that the call goes on as if no key was chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ConfigError, Table, is_name
from .keys import extension, is_extension

MENU_KEYS = "0123456789#ABCD"          # not "*": that is the opt-out and clear key
PROMPT_PREFIX = "prompt:"
MENU_OUTCOMES = ("verified", "identified")
MAX_PROMPT_CHOICES = 5                 # prompt keys heard per call before going on


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
    outcomes: tuple[str, ...] = MENU_OUTCOMES    # the ID&V outcomes (routes) offered it

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
    if not is_name(value):
        raise ConfigError(f"{key}: {value!r} is not a prompt name (letters A-Z, digits, - "
                          "and _)")
    return value


def _outcomes(table: Table, known: tuple[str, ...]) -> tuple[str, ...]:
    raw = table.get("outcomes", list, list(MENU_OUTCOMES))
    for item in raw:
        if item not in known:
            raise ConfigError(f"{table.key('outcomes')}: {item!r} is not an outcome (known: "
                              f"{', '.join(known)})")
    if not raw:
        raise ConfigError(f"{table.key('outcomes')}: no outcome is offered the menu (leave "
                          "[service.menu] out for no menu)")
    return tuple(dict.fromkeys(raw))


def menu_from_table(table: Table, known_outcomes: tuple[str, ...]) -> Menu | None:
    """[service.menu], or None when the service line has no menu."""
    if not table.data:
        return None
    prompt = _name(table.get("prompt", str, "menu"), table.key("prompt"))
    retries = table.integer("retries", 3, 1, 10)
    first = table.integer("first_timeout_ms", 5000, 1000, 60000)
    default = extension(table, "default", allow_empty=True)
    outcomes = _outcomes(table, known_outcomes)
    kt = table.sub("keys")
    choices = []
    for key in list(kt.data):
        value = kt.get(key, str)
        if len(key) != 1 or key not in MENU_KEYS:
            raise ConfigError(f"{kt.key(key)}: {key!r} is not one menu key "
                              f"({', '.join(MENU_KEYS)}; \"*\" is the opt-out/clear key)")
        if value.startswith(PROMPT_PREFIX):
            choices.append(Choice(key, prompt=_name(value[len(PROMPT_PREFIX):], kt.key(key))))
        elif is_extension(value):
            choices.append(Choice(key, extension=value))
        else:
            raise ConfigError(f"{kt.key(key)}: {value!r} is neither an extension (DTMF "
                              f"digits) nor \"{PROMPT_PREFIX}NAME\"")
    if not choices:
        raise ConfigError(f"{kt.path}: no menu keys (e.g. 1 = \"210\")")
    table.reject_unknown(("prompt", "retries", "first_timeout_ms", "default", "keys",
                          "outcomes"))
    return Menu(prompt, tuple(choices), retries, first, default, outcomes)
