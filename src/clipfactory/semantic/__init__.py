"""The semantic layer: text (and visual) embeddings, content categories, search, and target-mix plans.

See docs/semantic.md. Heavy dependencies (ONNX Runtime, tokenizers, usearch) sit behind the ``semantic``
extra and are imported inside the functions that use them.
"""
