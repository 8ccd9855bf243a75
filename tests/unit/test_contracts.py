"""The names in autobert.contracts are the ones the state machine, the starters and the triggers really use."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import pytest

from autobert import contracts
from autobert.adapters.local_store import LocalObjectStore
from autobert.workflow.runs import open_run
from autobert.workflow.triggers import Kind, record_trigger

ASL = json.loads((Path(__file__).resolve().parents[2] / "statemachines" / "retrain.asl.json").read_text())


def states(definition: dict):
    for name, state in definition["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from states(branch)


def top_level_key(path: str) -> str:
    match = re.match(r"\$\.([A-Za-z_]+)", path)
    assert match, path
    return match.group(1)


def test_every_result_path_of_the_state_machine_is_a_contract_key_and_every_key_is_used():
    result_paths = {top_level_key(path) for _, state in states(ASL) for path in
                    [state.get("ResultPath")] + [c.get("ResultPath") for c in state.get("Catch", [])] if path}
    assert result_paths == set(contracts.RESULT_KEYS)


def test_the_state_machine_reads_only_contract_keys():
    read = set(re.findall(r'"\$\.([A-Za-z_]+)', json.dumps(ASL)))  # every JSONPath into the state, read or written
    assert read <= set(contracts.INPUT_KEYS) | set(contracts.RESULT_KEYS)
    assert {contracts.GATE, contracts.TUNE} <= read


def test_a_runs_execution_input_has_exactly_the_contracts_input_keys(tmp_path):
    store = LocalObjectStore(tmp_path)
    trigger = record_trigger(store, "manual", source="cli")
    assert set(open_run(store, [trigger], executor="local")) == set(contracts.INPUT_KEYS)


def test_trigger_kinds_are_the_contracts_and_an_unknown_kind_is_refused(tmp_path):
    assert set(typing.get_args(Kind)) == set(contracts.TRIGGER_KINDS)
    with pytest.raises(ValueError, match="unknown trigger kind 'api'"):
        record_trigger(LocalObjectStore(tmp_path), "api")
