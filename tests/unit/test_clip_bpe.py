"""The torch-free CLIP tokenizer gives open_clip's token ids, id for id: the visual channel's
query vectors on ONNX Runtime are only the same as torch's if the tokens are."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from visual_search.models.onnxrt.clip_bpe import ClipBpeTokenizer, save_tokenizer

CORPUS = [
    "a dog running on the beach", "A Dog ON the BEACH!!", "x", "", "   ", "2 cats & 3 dogs, 1,000,000 stars",
    "it's they're we've I'm you'll he'd IT'S", "naïve café — “quoted” façade", "cafÃ© mojibake",
    "&amp;lt;b&amp;gt; &quot;html&quot; &#39;x&#39; &amp;amp;amp;", "ΟΔΟΣ ΣΟΦΙΑΣ and İstanbul, ß, ǅ",
    "emoji 🐶🐱‍👤👩🏽‍🚀 flags 🇯🇵🇫🇷 keycap 1️⃣", "日本語の文章です", "中文搜索图片", "한국어 검색", "العربية نص",
    "עברית", "हिन्दी पाठ", "ภาษาไทย", "русский текст", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇", "ﬁ ligature ｆｕｌｌ ｗｉｄｔｈ",
    "<end_of_text> typed by a user", "x<start_of_text>y", "!!<end_of_text>", "<END_OF_TEXT>", "<|endoftext|>",
    "tab\there\nnew line\r\nand  spaces", "\u200b zero \u00a0width\u2028", "\x00\x1b[31m control \x7f",
    "a" * 10_000, "word " * 2_000, ("a dog 🐶 日本 " * 900)[:10_000], "٣٤٥ ①②③ ½ 𝟘𝟙",
]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    import open_clip

    theirs = open_clip.get_tokenizer("ViT-B-32")  # open_clip's bundled BPE vocabulary
    folder = tmp_path_factory.mktemp("clip-bpe")
    save_tokenizer(theirs, folder)
    return theirs, ClipBpeTokenizer(folder)


def test_open_clip_token_ids_on_a_hostile_corpus(tokenizers):
    theirs, ours = tokenizers
    want, got = theirs(CORPUS).numpy(), ours(CORPUS)
    assert got.dtype == np.int64 and got.shape == want.shape == (len(CORPUS), 77)
    for text, w, g in zip(CORPUS, want, got):
        assert np.array_equal(w, g), text[:60]
    assert (got[:, 0] == theirs.sot_token_id).all()
    assert (got == theirs.eot_token_id).sum(axis=1).min() >= 1  # truncated texts still end in the end token


@hsettings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=120))
def test_open_clip_token_ids_on_any_text(tokenizers, text):
    theirs, ours = tokenizers
    assert np.array_equal(theirs([text]).numpy(), ours([text]))


@hsettings(max_examples=500, deadline=None)
@given(st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="&"), max_size=200))
def test_plain_ascii_is_what_ftfy_and_unescaping_leave_it(text):
    """The tokenizer skips ftfy (and its import) for printable ASCII without "&": that must change nothing."""
    import html

    import ftfy

    assert html.unescape(html.unescape(ftfy.fix_text(text))) == text


def test_no_text_gives_no_rows(tokenizers):
    assert tokenizers[1]([]).shape == (0, 77)
