"""Kafka plumbing: the topic catalogue, a confirming producer and a consumer runner."""
