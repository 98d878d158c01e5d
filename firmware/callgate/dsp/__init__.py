"""Pure signal processing: streaming detectors and their matching generators.

Every detector takes int16 frames of any length at 8 kHz (RATE), keeps its
state between frames, and returns events stamped with the sample position of
their onset. Nothing here does I/O.
"""

RATE = 8000
