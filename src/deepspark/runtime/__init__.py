"""Executor-side engine: decoding and preprocessing, batching, threads, Arrow plumbing.

Nothing here is public API; transformers in :mod:`deepspark.ml` build on it.
"""
