"""Ray Tune's experiment-state file, read one trial at a time.

The file (``experiment_state-*.json``, core/layout.py) holds every trial as
two JSON texts, about 24 KB a trial: 240 MB at 10,000 trials. Read whole and
parsed, it costs the reader twice that at once (issue 24: the driver's
memory over a 10,000-trial sweep, benchmarks/driver_scale.py), so
:func:`trial_data` decodes its ``trial_data`` list one entry at a time from
a stream, a megabyte at a time.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator

from scenetune.core import storage

CHUNK = 1 << 20


class _Stream:
    """JSON values and punctuation from a stream of UTF-8 text, read as needed."""

    def __init__(self, f, uri: str, chunk: int):
        self.f, self.uri, self.chunk = f, uri, chunk
        self.text, self.pos, self.done = "", 0, False
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.decoder = json.JSONDecoder()

    def _more(self) -> None:
        data = self.f.read(self.chunk)
        self.done = not data
        self.text = self.text[self.pos:] + self.utf8.decode(data, final=self.done)
        self.pos = 0

    def _skip_space(self) -> None:
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.text) or self.done:
                return
            self._more()

    def peek(self) -> str:
        """The next non-blank character ('' at the end), not consumed."""
        self._skip_space()
        return self.text[self.pos:self.pos + 1]

    def punctuation(self, expected: str) -> str:
        """The next non-blank character, which must be one of ``expected``."""
        found = self.peek()
        if not found or found not in expected:
            raise ValueError(f"{self.uri}: not Ray Tune's experiment state: expected one of {expected!r}, "
                             f"found {found or 'the end'!r}")
        self.pos += 1
        return found

    def value(self):
        """The next JSON value, read on until it is whole (a number is whole once a character follows it)."""
        while True:
            self._skip_space()
            try:
                item, end = self.decoder.raw_decode(self.text, self.pos)
                if end < len(self.text) or self.done:
                    self.pos = end
                    return item
            except json.JSONDecodeError as error:
                if self.done:
                    raise ValueError(f"{self.uri}: not valid JSON ({error.msg})") from None
            self._more()


def trial_data(state_uri: str, chunk: int = CHUNK) -> Iterator:
    """Each entry of the file's ``trial_data`` list (a trial's pair of JSON
    texts), decoded one at a time; ValueError when the file is not such JSON."""
    fs, path = storage.resolve(state_uri)
    with fs.open_input_stream(path) as f:
        stream = _Stream(f, state_uri, chunk)
        stream.punctuation("{")
        if stream.peek() == "}":
            raise ValueError(f"{state_uri}: no trial_data")
        while True:
            key = stream.value()
            stream.punctuation(":")
            if key == "trial_data":
                break
            stream.value()
            if stream.punctuation(",}") == "}":
                raise ValueError(f"{state_uri}: no trial_data")
        stream.punctuation("[")
        if stream.peek() == "]":
            return
        while True:
            yield stream.value()
            if stream.punctuation(",]") == "]":
                return
