"""The batcher service."""
