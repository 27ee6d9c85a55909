"""The query encoders on ONNX Runtime: exported once from the torch models, verified, cached.

  export.py    - torch side: the graphs (the same code paths as the torch encoders), export, verification
  encoders.py  - runtime side: ONNX Runtime sessions and `tokenizers`, no torch, transformers or open_clip
  clip_bpe.py  - open_clip's CLIP tokenizer, reproduced without torch
  cache.py     - where exports live under the data dir, keyed by model identity and library versions

`visual_search/models/backend.py` decides, per encoder, whether a search runs here or on torch.
"""
