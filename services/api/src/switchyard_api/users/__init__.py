"""Users (seeds 000 and 002): PostgreSQL rows, a Redis cache in front, events on `users`."""
