"""Logs and health pings (seed 001): POST turns each item into a Kafka event; GET reads
back what the batcher stored."""
