"""Composition root: the one place that picks adapters, from ``Settings.mode`` (``local`` or ``aws``).

Handlers, the CLI and the local stack call ``bootstrap()`` once (per Lambda container: at module level is fine, since
adapters do no I/O when built) and use the ``Services`` it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from autobert.config import Settings, get_settings
from autobert.ports import ObjectStore


@dataclass
class Services:
    settings: Settings

    @property
    def aws(self) -> bool:
        return self.settings.mode == "aws"

    def client(self, name: str):
        import boto3

        return boto3.client(name, region_name=self.settings.region)

    @cached_property
    def store(self) -> ObjectStore:
        if self.aws:
            from autobert.adapters.s3_store import S3ObjectStore

            if not self.settings.bucket:
                raise RuntimeError("AUTOBERT_BUCKET must be set in aws mode")
            return S3ObjectStore(self.client("s3"), self.settings.bucket)
        from autobert.adapters.local_store import LocalObjectStore

        return LocalObjectStore(self.settings.home / "bucket")


def bootstrap(settings: Settings | None = None) -> Services:
    return Services(settings or get_settings())
