"""The job-worker service."""
