"""The Switchyard HTTP API: thin Flask blueprints; every write becomes a Kafka event."""
