"""The fallback for questions the router could not place: retrieval over the knowledge
base, answered by a backend chosen by configuration (extractive, openai, llama_cpp) within
one guard."""

from flows.fallback.answerer import BACKENDS, Fallback, FallbackAnswer, FallbackSettings
from flows.fallback.base import Backend, BackendError
from flows.fallback.guard import Guard

__all__ = ["BACKENDS", "Backend", "BackendError", "Fallback", "FallbackAnswer", "FallbackSettings", "Guard"]
