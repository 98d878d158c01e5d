"""Home Assistant MQTT discovery: retained configs so a device shows up by itself.

One config per entity on `<discovery_prefix>/<component>/<node_id>/<object_id>/config`
(Home Assistant's documented discovery topic; node and object ids of
[a-zA-Z0-9_-] only), each reading the device's retained state topic with a
value template and going unavailable with the device's availability topic:

- a sensor per line: its state (idle, ringing, in_flow, transferring, down);
- a sensor per outcome of today's calls, and their total (state_class total_increasing:
  it starts again from zero at local midnight, which Home Assistant takes as a reset);
- a binary sensor "alarm" (device_class problem) with the alarms as attributes, and a
  sensor naming them.
"""

from __future__ import annotations

import json
import re

from .. import __version__
from .settings import MqttSettings
from .state import OUTCOMES
from .topics import OFFLINE, ONLINE

_ID = re.compile(r"[^A-Za-z0-9_-]")


def ha_id(text: str) -> str:
    return _ID.sub("_", text)


def configs(s: MqttSettings, lines: list[str]) -> list[tuple[str, dict]]:
    """(topic, payload) of every discovery config of the device."""
    node = ha_id(s.device_id)
    t = s.topics
    device = {"identifiers": [f"callgate_{node}"], "name": f"callgate {s.device_id}",
              "manufacturer": "callgate", "model": "caller ID and verification appliance",
              "sw_version": __version__}
    common = {"state_topic": t.state, "availability_topic": t.availability,
              "payload_available": ONLINE, "payload_not_available": OFFLINE,
              "device": device}
    out: list[tuple[str, dict]] = []

    def add(component: str, object_id: str, **fields) -> None:
        uid = f"callgate_{node}_{ha_id(object_id)}"
        out.append((f"{s.discovery_prefix}/{component}/{node}/{ha_id(object_id)}/config",
                    {"unique_id": uid, **common, **fields}))

    for line in lines:
        key = json.dumps(line)
        add("sensor", f"line_{line}", name=f"Line {line}", icon="mdi:phone-classic",
            value_template="{{ value_json.lines[%s].state | default('unknown') }}" % key)
    for outcome in (*OUTCOMES, "total"):
        add("sensor", f"calls_today_{outcome}",
            name=f"Calls today ({outcome.replace('_', ' ')})", icon="mdi:phone-check",
            unit_of_measurement="calls", state_class="total_increasing",
            value_template="{{ value_json.calls_today.%s }}" % outcome)
    add("binary_sensor", "alarm", name="Alarm", device_class="problem",
        payload_on="ON", payload_off="OFF",
        value_template="{{ 'ON' if value_json.alarms else 'OFF' }}",
        json_attributes_topic=t.state,
        json_attributes_template="{{ {'alarms': value_json.alarms} | tojson }}")
    add("sensor", "alarms", name="Alarms", icon="mdi:alert", entity_category="diagnostic",
        value_template="{{ value_json.alarms | map(attribute='alarm') | join(', ') "
                       "or 'none' }}")
    return out
