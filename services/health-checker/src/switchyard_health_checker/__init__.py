"""The health-checker service."""
