"""callgate: caller identification and verification on an analog phone line."""

__version__ = "0.1.0"
