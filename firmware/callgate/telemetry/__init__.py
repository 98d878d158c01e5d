"""Telemetry: the device's state, its call outcomes and faults, pushed to an engine the
installer already runs (an MQTT broker) or scraped on the LAN (the web app's /metrics),
never on the audio path.

    health.py     the one snapshot of the device's state that MQTT and /metrics read
    board.py      what the board reports: uptime, CPU temperature, throttling, free space
    settings.py   [telemetry.mqtt], read and checked
    topics.py     the topic of each message, under prefix/device_id
    client.py     the broker link (paho-mqtt over TLS, last will, availability)
    events.py     call outcomes and faults as event messages (masked), queued by the
                  recorder in the store's MQTT outbox table
    state.py      the retained state document and its alarms
    discovery.py  Home Assistant MQTT discovery configs
    worker.py     the telemetry thread: state, outbox delivery in order, remote config
    remote.py     signed remote configuration (Ed25519), checked before it is applied
    fleet.py      `callgate fleet`: what the broker knows of every device
"""
