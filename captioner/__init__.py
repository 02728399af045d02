"""MVCap Studio captioner: category-guided captions from a vision LLM, batched, nothing lost."""
__version__ = "0.1.0"
