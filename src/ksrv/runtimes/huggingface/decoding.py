"""Token ids -> text deltas for streaming, with OpenAI stop sequences.

Decoding each token alone breaks multi-byte characters and words that tokenizers merge, so the
whole generation is decoded each step and the new suffix is the delta; a trailing replacement
character (half a UTF-8 character) is held back. Text that might be the start of a stop
sequence is held back too, so a client never sees part of a stop string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_INCOMPLETE = "\ufffd"


@dataclass(slots=True)
class Delta:
    """New text since the last step; `is_stopped` when a stop sequence ended the generation."""

    text: str
    is_stopped: bool = False


class TextStream:
    """Follows one generation's token ids and yields its text in safe pieces."""

    def __init__(self, tokenizer: Any, stop: list[str]) -> None:
        self._tokenizer = tokenizer
        self._stop = [s for s in stop if s]
        self._hold = max((len(s) for s in self._stop), default=1) - 1
        self.text = ""  # what has been handed out so far
        self.is_stopped = False

    def update(self, token_ids: list[int], is_finished: bool) -> Delta:
        """The text to hand out now that the generation is `token_ids`."""
        full = self._tokenizer.decode(token_ids, skip_special_tokens=True)
        for stop in self._stop:
            at = full.find(stop)
            if at != -1:
                full = full[:at]
                self.is_stopped = True
        if not (self.is_stopped or is_finished):
            full = full.rstrip(_INCOMPLETE)
            full = full[: max(len(self.text), len(full) - self._hold)] if self._stop else full
        if not full.startswith(self.text):
            # Decoding changed text already sent (rare merges): send only what is new.
            full = self.text + full[len(self.text) :]
        delta, self.text = full[len(self.text) :], full
        return Delta(delta, self.is_stopped)
