"""PostgreSQL: engine, models, migrations."""
