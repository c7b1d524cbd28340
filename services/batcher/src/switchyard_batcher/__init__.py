"""The batcher: log and health events from Kafka, in batches, into PostgreSQL and files."""
