"""Switchyard's shared library: the pieces every service is composed of."""
