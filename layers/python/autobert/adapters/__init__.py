"""Adapters for the ports in ``autobert.ports``: ``local`` (embedded default) and ``aws``."""
