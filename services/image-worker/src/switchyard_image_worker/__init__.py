"""The image-worker service."""
