"""Fetching URLs given by users: the SSRF guard, and a guarded async HTTP client.

:mod:`~switchyard.fetch.guard`, :mod:`~switchyard.fetch.errors` and
:mod:`~switchyard.fetch.sniff` need only the standard library; the
client (:mod:`~switchyard.fetch.fetcher`) needs aiohttp, installed with the extra
``switchyard-shared[fetch]``.
"""
