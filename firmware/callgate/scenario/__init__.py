"""Testers' tools: `callgate simulate` (scripted calls on the simulated exchange) and
`callgate replay` (a recorded call), through the real engine, flow, back end and store.

format.py     the scenario file (calls, service, back end, expectations)
crm.py        the scenario's back end: the embedded directory or the reference HTTPS server
refserver.py  our reference REST API on a real HTTPS server on loopback, misbehaving on demand
transcript.py watching a call (line tap, player, handler and record) for the transcript
check.py      expectations and their checks
run.py        running a scenario or a recording
cli.py        the two subcommands
"""
