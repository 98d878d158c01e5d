"""Pure signal processing: streaming detectors and their matching generators.

Every detector takes int16 frames of any length at 8 kHz (RATE), keeps its
state between frames, and returns events stamped with the sample position of
their onset, counted from its last `reset(at)`: reset at a line sample, it
reports on the line's clock. The detector bank (bank.py) runs the ones a use
needs over one stream. Nothing here does I/O.
"""

RATE = 8000
