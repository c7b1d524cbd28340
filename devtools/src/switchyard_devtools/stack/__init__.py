"""The one-command dev stack: embedded servers from pip packages and a service supervisor."""
