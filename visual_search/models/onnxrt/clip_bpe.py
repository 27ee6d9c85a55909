"""open_clip's default CLIP tokenizer (`SimpleTokenizer`, clean="lower") without torch or open_clip.

The search process must not import open_clip (6.8 s, 890 MB) only to turn a query into 77 token
ids. The text goes through the same steps, in the same order: ftfy's `fix_text`, HTML entities
unescaped twice, whitespace collapsed, lower case; then the same word pattern (the `regex`
module, same flags) and byte-pair merges from the model's own vocabulary, run by the `tokenizers`
library. Each step is chosen to be the same function, not a look-alike: `tokenizers`' own
normalizers lower-case character by character (no final sigma) and split on special tokens
anywhere in the text, which open_clip does not. Exports are verified id for id against open_clip
on probe texts (export.py); the test suite does the same on a larger corpus.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

WORD_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
END_OF_WORD = "</w>"


def save_tokenizer(tok, folder: Path) -> None:
    """Write what `ClipBpeTokenizer` needs from a loaded open_clip `SimpleTokenizer`: its own
    vocabulary and merge ranks (whatever BPE file it was built from), special tokens, context length."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    specials = [tok.decoder[i] for i in tok.all_special_ids]
    merges = sorted(tok.bpe_ranks, key=tok.bpe_ranks.get)  # rank order: the order merges are tried in
    bpe = Tokenizer(models.BPE(vocab=dict(tok.encoder), merges=merges, end_of_word_suffix=END_OF_WORD))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)  # bytes -> symbols
    bpe.add_special_tokens([AddedToken(s, normalized=False) for s in specials])  # a word that IS one stays whole
    (folder / "clip_bpe.json").write_text(bpe.to_str(), encoding="utf-8")
    (folder / "clip_tokenizer.json").write_text(json.dumps(
        {"context_length": tok.context_length, "sot": tok.sot_token_id, "eot": tok.eot_token_id,
         "specials": specials}, ensure_ascii=False), encoding="utf-8")


class ClipBpeTokenizer:
    """Texts -> (n, context_length) int64 token ids, exactly as open_clip's tokenizer returns them."""

    def __init__(self, folder: Path) -> None:
        import regex
        from tokenizers import Tokenizer

        spec = json.loads((folder / "clip_tokenizer.json").read_text(encoding="utf-8"))
        self.context_length = int(spec["context_length"])
        self.sot, self.eot = int(spec["sot"]), int(spec["eot"])
        specials = "|".join(regex.escape(s) for s in spec["specials"])
        self._words = regex.compile(specials + "|" + WORD_PATTERN, regex.IGNORECASE)
        self._bpe = Tokenizer.from_str((folder / "clip_bpe.json").read_text(encoding="utf-8"))

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.context_length), np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot, *self._encode(text), self.eot]
            if len(ids) > self.context_length:  # truncated, still ending in the end token
                ids = ids[: self.context_length - 1] + [self.eot]
            out[row, : len(ids)] = ids
        return out

    def _encode(self, text: str) -> list[int]:
        words = []
        for match in self._words.finditer(_clean(text)):
            words.append(match.group())
            if len(words) >= self.context_length:  # each word gives 1+ tokens: the rest is truncated anyway
                break
        if not words:
            return []
        return self._bpe.encode(words, is_pretokenized=True, add_special_tokens=False).ids


def _clean(text: str) -> str:
    if not _PLAIN.fullmatch(text):  # ftfy and the unescaping change nothing in plain ASCII without "&"
        import ftfy  # 0.15 s to import: a typical query never pays it

        text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return " ".join(text.split()).lower()


_PLAIN = re.compile(r"[ -%'-~]*")  # printable ASCII but "&"
