"""The `hat` backend: an FXO DAA HAT, GPIO through libgpiod v2 (gpio.py), audio through
ALSA (alsa.py), the board described by a file in hw/ (board.py), the Line in line.py.

Nothing here imports gpiod or alsaaudio until a HatLine is opened."""

from .board import (DEFAULT_BOARD, HW_ENV, Board, HookSpec, RingSpec, find_board, hw_dirs,
                    load_board)
from .line import HatLine, SampleClock

__all__ = ["DEFAULT_BOARD", "HW_ENV", "Board", "HatLine", "HookSpec", "RingSpec", "SampleClock",
           "find_board", "hw_dirs", "load_board"]
