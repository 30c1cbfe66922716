"""Captions from a vision-language model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

No model runs inside clipfactory: :mod:`.client` sends a few JPEG frames of a clip to a server that the
operator runs or rents (vLLM, llama.cpp's server, a hosted API) and reads back its text. See
``docs/captions.md``.
"""
