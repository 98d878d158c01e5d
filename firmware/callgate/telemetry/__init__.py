"""Telemetry: the device's state and call outcomes, pushed to an engine people already
run (an MQTT broker) or scraped on the LAN (the web app's /metrics), never on the audio
path. health.py is the one snapshot of the device's state that both read."""
