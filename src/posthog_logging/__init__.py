"""Send LLM / agent traces to PostHog LLM analytics through the standard ``logging`` module."""

from __future__ import annotations

from ._version import __version__

__all__ = ["__version__"]
