"""The four stages of the pipeline, one module each, and the visual channel beside them.

  1. caption.py  Understanding images: a captioner answers "what does this image describe?"
  2. embed.py    Storing understanding: the text encoder turns each caption into a unit vector,
     store.py    kept in a persistent Chroma collection with the caption and the image's metadata.
  3. query.py    Facilitating search: the query goes through the SAME text encoder.
  4. rank.py     Generating results: cosine similarity -> relevance in [0, 1], and the hybrid score.

  visual.py      CLIP embeds the images themselves (image-to-image search, the hybrid), and
  tags.py        names what they show from a vocabulary (CLIP zero-shot).
  ocr.py         reads the words printed in the picture (RapidOCR), for the word channel (words.py).

Each stage is a function of plain data behind a small interface (`Captioner`, `TextEncoder`,
`VectorStore`): swap one and the rest runs unchanged. search/searcher.py strings stages 3 and 4
together for one query; library/indexer.py strings stages 1 and 2 together for new images.
"""
