"""The web app: agent screen-pop, live status, reports and users (issue 5).

A separate process (`callgate web`) that reads the engine's call store and
never writes it; its own users and sessions live in their own SQLite file.
Importing this package imports nothing heavy: `check-config` reads
`web.settings` without Flask.
"""
