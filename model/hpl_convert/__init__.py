"""happy-phone-llm converter: Hugging Face causal LM folder -> GGUF (llama.cpp layout)."""

from .errors import ConvertError

__all__ = ["ConvertError"]
