"""Adapters that put arbiter-core where its users already are.

Each integration lives in its own module and imports its host library only
there (``arbiter_core.integrations.litellm`` needs the ``litellm`` extra).
"""
