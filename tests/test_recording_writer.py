"""The recording's writer thread (line/recording_writer.py): the frame loop hands over,
the disk may be slow. On a paced line a stuck disk costs the recording, never a frame."""

from __future__ import annotations

import logging
import threading

from callgate.line import recording_writer
from callgate.line.recording_writer import RecordingWriter


def stuck_writer(tmp_path, wait: bool):
    """A writer whose thread hangs on its first item until the event is set."""
    files: list = []
    w = RecordingWriter(tmp_path, ".events.json", files, wait=wait)
    release, busy = threading.Event(), threading.Event()
    real = w._do

    def slow(item, current):
        busy.set()
        release.wait(30)
        return real(item, current)

    w._do = slow
    return w, files, release, busy


def test_a_stuck_disk_abandons_the_recording_and_never_blocks_a_paced_line(tmp_path, caplog):
    w, files, release, busy = stuck_writer(tmp_path, wait=False)
    n = w.open()
    assert busy.wait(30)
    with caplog.at_level(logging.ERROR, logger="callgate.line"):
        for _ in range(recording_writer.QUEUE_ITEMS + 50):     # returns: never waits
            w.audio(n, b"\0\0" * 160)
        w.finish(n, {"events": []})
    assert caplog.text.count("too slow") == 1
    release.set()
    w.close()
    assert files == [] and w.abandoned == 1
    assert list(tmp_path.iterdir()) == []                       # no half fixture left


def test_an_unpaced_line_waits_for_the_disk_and_keeps_every_frame(tmp_path):
    w, files, release, busy = stuck_writer(tmp_path, wait=True)
    n = w.open()
    assert busy.wait(30)
    threading.Timer(0.2, release.set).start()                  # the disk comes back
    for _ in range(recording_writer.QUEUE_ITEMS + 50):
        w.audio(n, b"\1\0" * 160)
    w.finish(n, {"events": []})
    w.close()
    assert [f.name for f in files] == ["call-0001.wav"] and w.abandoned == 0
    size = files[0].stat().st_size
    assert size == 44 + (recording_writer.QUEUE_ITEMS + 50) * 320
    assert (tmp_path / "call-0001.events.json").stat().st_mode & 0o777 == 0o600
