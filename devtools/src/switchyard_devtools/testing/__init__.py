"""Test support: fixtures that give every test real PostgreSQL, Redis and Kafka."""
