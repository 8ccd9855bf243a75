"""Settings reach what a process hosts without touching its environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from autobert.bootstrap import NotLocalMode, bootstrap, bootstrap_local_stack
from autobert.config import Settings, configure, get_settings, reset_settings


def test_configured_settings_are_what_a_bare_bootstrap_gets_and_the_environment_is_untouched(tmp_path):
    before = dict(os.environ)
    settings = Settings(home=tmp_path, endpoint_url="http://127.0.0.1:54321")
    configure(settings)
    try:
        assert get_settings() is settings and bootstrap().settings is settings  # a hosted handler's bootstrap()
    finally:
        reset_settings()
    assert dict(os.environ) == before
    assert get_settings().endpoint_url != "http://127.0.0.1:54321"


def test_a_child_given_the_settings_as_environment_reads_the_same_settings(tmp_path):
    settings = Settings(home=tmp_path, endpoint_url="http://127.0.0.1:54321", train_hyperparameters={"epochs": "1"},
                        gate_accuracy_margin=0.25)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBERT_")} | settings.as_environment()
    out = subprocess.run([sys.executable, "-c", "from autobert.config import get_settings; "
                          "print(get_settings().model_dump_json())"], env=env, capture_output=True, text=True,
                         check=True, timeout=60)
    assert Settings.model_validate_json(out.stdout) == settings


def test_the_local_stack_refuses_aws_settings_with_what_to_do(tmp_path):
    with pytest.raises(NotLocalMode, match="AUTOBERT_MODE=aws deploy with serverless"):
        bootstrap_local_stack(Settings(home=tmp_path, mode="aws", bucket="b"))
    assert bootstrap_local_stack(Settings(home=tmp_path)).settings.mode == "local"
