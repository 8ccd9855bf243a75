"""The CLI with no local stack running: commands that need it stop at once with one clear line (and record
nothing); commands that only read the bucket still work."""

from __future__ import annotations

import socket

import pytest
from serving_helpers import set_env

from autobert import cli, layout
from autobert.bootstrap import Services
from autobert.config import Settings
from autobert.workflow.registry import ModelRegistry


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_stack(tmp_path, monkeypatch) -> Services:
    url = f"http://127.0.0.1:{closed_port()}"
    set_env(monkeypatch, home=tmp_path, endpoint_url=url, api_url=url)
    return Services(Settings(home=tmp_path))


@pytest.mark.parametrize("argv", [["retrain"], ["retrain", "--wait"], ["retrain", "--full"]])
def test_retrain_without_the_local_stack_says_so_and_starts_nothing(no_stack, capsys, argv):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autobert: error: the local stack is not running") and "`autobert up`" in err
    assert "\n" not in err  # one line, no trace
    assert no_stack.store.list_keys(layout.TRIGGERS) == [] and no_stack.store.list_keys(layout.RUNS) == []


def test_rollback_without_the_local_stack_says_so_and_records_no_failed_rollback(no_stack, capsys):
    registry = ModelRegistry(no_stack.store)
    registry.register("ab-1", status="candidate", model_uri="/models/ab-1")
    registry.mark_live("ab-1")
    registry.register("ab-2", status="candidate", model_uri="/models/ab-2")
    assert cli.main(["rollback", "ab-2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autobert: error: the local stack is not running") and "\n" not in err
    assert registry.live()["version"] == "ab-1" and no_stack.store.list_keys(layout.RUNS) == []


@pytest.mark.parametrize("argv", [["predict", "some text"], ["feedback", "some text", "sci.space"]])
def test_predict_and_feedback_without_the_local_stack_say_so(no_stack, capsys, argv):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "the local stack is not running" in err and "`autobert up`" in err and "\n" not in err


@pytest.mark.parametrize("argv, out", [(["runs"], "no runs yet"), (["models"], "no models yet")])
def test_runs_and_models_read_the_bucket_and_need_no_stack(no_stack, capsys, argv, out):
    assert cli.main(argv) == 0
    assert out in capsys.readouterr().out


def test_runs_show_of_an_unknown_run_is_one_clear_line(no_stack, capsys):
    assert cli.main(["runs", "show", "r-nope"]) == 2
    assert capsys.readouterr().err.strip() == "autobert: error: no run 'r-nope'"


@pytest.mark.slow
@pytest.mark.parametrize("taken", ["api_port", "console_port"])
def test_up_with_a_port_taken_stops_with_one_clear_line_and_its_endpoint(tmp_path, monkeypatch, capsys, taken):
    import json

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        ports = {"endpoint_port": 0, "api_port": 0, "console_port": 0, taken: sock.getsockname()[1]}
        set_env(monkeypatch, home=tmp_path, mode="local", api_host="127.0.0.1", endpoint_url="http://127.0.0.1:9",
                schedule_enabled="false", **ports)
        assert cli.main(["up"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()[-1]
    what = {"api_port": "the local API", "console_port": "the runs console"}[taken]
    assert err.startswith(f"autobert: error: {what} cannot listen on 127.0.0.1:{ports[taken]}"), captured.err
    events = [json.loads(line)["event"] for line in captured.out.splitlines()]
    assert events == ["stopped"]  # never "listening"
