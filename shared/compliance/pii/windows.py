"""Pre-pass: the parts of a text where a detector regex can match, so it need not run over the rest.

The detector regexes cost tens of nanoseconds per character of text (each position is a match
attempt); most text holds no candidate at all. Two kinds of windows narrow a pass:

- ``DigitRuns``: SSN, card, phone and IPv4 matches are runs of at least 7 characters of digits and
  the separators `` -.()+``, starting at a digit or at a ``+`` / ``(`` right before one. One pass
  finds those runs; each regex then runs once over their concatenation.
- ``trigger_windows``: spans around the occurrences of a character every match contains (``@`` for
  emails, ``:`` for IPv6), found by ``str.find``, with margins that cover any match using it.

Either way a regex finds exactly the matches it finds over the whole text, in the same order:
tests/unit/pii/test_windows.py checks this against whole-text runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

# A run of digits and digit separators starting at a digit, long enough to hold any candidate.
_DIGIT_RUN = re.compile(r"\d[\d \-.()+]{6,}")
# Same runs in ASCII text; an explicit class is about 1.5x faster for the engine than \d.
_ASCII_DIGIT_RUN = re.compile(r"[0-9][0-9 \-.()+]{6,}")
# Characters of text kept on each side of a run: the digit regexes look at most 2 around a match.
_CONTEXT = 3
# Segments are joined by NUL, which no detector regex matches (and `scan` refuses in input).
_JOIN = "\x00"


@dataclass(frozen=True, slots=True)
class DigitRuns:
    """Digit runs of a text with their context, joined; ``finditer`` maps matches back to the text."""

    joined: str
    # Offset of each segment in ``joined``, and what to add to it to get the text offset.
    joined_starts: tuple[int, ...]
    shifts: tuple[int, ...]
    # The segments, their text offsets and the length of the run inside each (empty for ``whole``).
    parts: tuple[str, ...] = ()
    text_starts: tuple[int, ...] = ()
    run_lengths: tuple[int, ...] = ()

    @classmethod
    def whole(cls, text: str) -> DigitRuns:
        """One segment, the text itself: the reference the runs must agree with."""
        return cls(text, (0,), (0,))

    @classmethod
    def of(cls, text: str) -> DigitRuns:
        if _JOIN in text:
            return cls.whole(text)  # a NUL inside would join segments: no pre-pass for such text
        pattern = _ASCII_DIGIT_RUN if text.isascii() else _DIGIT_RUN
        # The run ends where the separators do, so no match extends past it; a match may start one
        # character early, at a '+' or '('. Slicing past the end of the text just stops there.
        lead = 1 + _CONTEXT
        spans = [m.span() for m in pattern.finditer(text)]
        if not spans:
            return _NO_RUNS
        starts = [start - lead if start > lead else 0 for start, _ in spans]
        parts = [text[start : end + _CONTEXT] for start, (_, end) in zip(starts, spans, strict=True)]
        return cls._join(parts, starts, [end - start for start, end in spans])

    @classmethod
    def _join(cls, parts: list[str], text_starts: list[int], run_lengths: list[int]) -> DigitRuns:
        joined_starts = list(accumulate([len(part) + 1 for part in parts], initial=0))
        joined_starts.pop()
        shifts = tuple(t - j for t, j in zip(text_starts, joined_starts, strict=True))
        return cls(
            _JOIN.join(parts),
            tuple(joined_starts),
            shifts,
            tuple(parts),
            tuple(text_starts),
            tuple(run_lengths),
        )

    def having(self, min_length: int, min_dots: int = 0) -> DigitRuns:
        """Only the runs that can hold a match of ``min_length`` characters with ``min_dots`` dots.

        A match lies inside one run, so a regex finds the same over these as over all the runs.
        """
        if not self.parts:
            return self
        keep = [
            i
            for i, (length, part) in enumerate(zip(self.run_lengths, self.parts, strict=True))
            if length >= min_length and (not min_dots or part.count(".") >= min_dots)
        ]
        if len(keep) == len(self.parts):
            return self
        return DigitRuns._join(
            [self.parts[i] for i in keep],
            [self.text_starts[i] for i in keep],
            [self.run_lengths[i] for i in keep],
        )

    def finditer(self, pattern: re.Pattern[str]) -> Iterator[tuple[int, re.Match[str]]]:
        """``(shift, match)``: ``match.start() + shift`` is the match's position in the text."""
        starts, shifts = self.joined_starts, self.shifts
        last = len(starts) - 1
        i = 0
        for m in pattern.finditer(self.joined):
            pos = m.start()
            # Matches come in order, so the segment index only moves forward.
            while i < last and starts[i + 1] <= pos:
                i += 1
            yield shifts[i], m


_NO_RUNS = DigitRuns("", (0,), (0,))


def trigger_windows(
    text: str,
    trigger: str,
    before: int,
    after: int,
    reach: re.Pattern[str] | None = None,
    followed_by: frozenset[str] | None = None,
) -> list[tuple[int, int]]:
    """Merged ``(pos, endpos)`` spans around each ``trigger`` character.

    A regex run with ``pos`` / ``endpos`` over each span finds what it finds over the whole text
    when every match starts at most ``before`` characters before a trigger it contains and ends,
    lookahead included, at most ``after`` characters after it; with ``reach``, a pattern matched
    right after the trigger, at most ``after`` characters after where ``reach`` ends. With
    ``followed_by``, only triggers followed by one of those characters count (every match must
    contain such a trigger within ``before`` characters of its start). Spans that
    overlap are merged, so no match attempt sees a cut that the whole-text run would not. Dense
    triggers give one span, the text, since per-span calls would cost more than they save.
    """
    n = len(text)
    count = text.count(trigger)
    if not count:
        return []
    if count * (before + after + 1) >= n:
        return [(0, n)]
    spans: list[tuple[int, int]] = []
    find = text.find
    at = find(trigger)
    while at != -1:
        if followed_by is not None and (at + 1 >= n or text[at + 1] not in followed_by):
            at = find(trigger, at + 1)
            continue
        stop = at + 1 if reach is None else reach.match(text, at + 1).end()  # type: ignore[union-attr]
        start, end = max(0, at - before), min(n, stop + after)
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
        at = find(trigger, at + 1)
    return spans
