"""model_fn + predict_fn on a tiny model folder (as training/train.py writes it)."""

from __future__ import annotations

import json

import pytest
from serving_helpers import LABELS, REPO, load_module, make_linear_model_folder, make_model_folder


@pytest.fixture(scope="module")
def inference():
    return load_module(REPO / "inference" / "inference.py", "inference_under_test")


@pytest.fixture(scope="module", params=["bert", "linear"])
def model(request, inference, tmp_path_factory):
    """Both kinds of model folder: BERT, and the linear model alone (no encoder files), served alike."""
    make = make_model_folder if request.param == "bert" else make_linear_model_folder
    return inference.model_fn(str(make(tmp_path_factory.mktemp("m") / "model", "v7")))


def run(inference, model, request: dict) -> dict:
    data = inference.input_fn(json.dumps(request).encode(), "application/json")
    return json.loads(inference.output_fn(inference.predict_fn(data, model), "application/json")[0])


def test_one_prediction_per_input_in_order_with_scores_and_version(inference, model):
    texts = ["the shuttle reached orbit", "my car needs new brakes", "a bill about firearms", "x"]
    response = run(inference, model, {"instances": texts, "top_k": 3})
    assert response["model_version"] == "v7"
    assert len(response["predictions"]) == len(texts)
    for prediction in response["predictions"]:
        scores = [alt["score"] for alt in prediction["top_k"]]
        assert {alt["label"] for alt in prediction["top_k"]} == set(LABELS)
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1, abs=1e-4)
        assert prediction["label"] == prediction["top_k"][0]["label"]
    # In order: each text alone gets the prediction it got inside the batch.
    for text, prediction in zip(texts, response["predictions"], strict=True):
        alone = run(inference, model, {"text": text, "top_k": 3})["predictions"][0]
        assert alone["label"] == prediction["label"]
        assert alone["score"] == pytest.approx(prediction["score"], abs=2e-2)  # bf16 batch padding may differ


def test_top_k_is_capped_at_the_number_of_labels_and_defaults_to_the_setting(inference, model):
    assert len(run(inference, model, {"text": "a", "top_k": 50})["predictions"][0]["top_k"]) == len(LABELS)
    assert len(run(inference, model, {"text": "a", "top_k": 1})["predictions"][0]["top_k"]) == 1
    assert len(run(inference, model, {"text": "a"})["predictions"][0]["top_k"]) == min(3, len(LABELS))


def test_a_document_far_longer_than_max_length_is_truncated_not_refused(inference, model):
    long_text = "orbit " * 5000  # thousands of tokens against max_length 32
    assert len(run(inference, model, {"text": long_text})["predictions"]) == 1


def test_a_folder_that_is_not_a_model_is_a_load_error_not_a_crash(inference, tmp_path):
    with pytest.raises(Exception) as info:
        inference.model_fn(str(tmp_path))
    assert info.value.status_code == 500 and "cannot load model" in info.value.message


def test_a_linear_only_model_folder_is_served_without_any_encoder_files(inference, tmp_path):
    folder = make_linear_model_folder(tmp_path / "model", "lin-1")
    assert not (folder / "config.json").exists() and not (folder / "model.safetensors").exists()
    model = inference.model_fn(str(folder))
    response = run(inference, model, {"instances": ["sci space text", "rec autos text"], "top_k": 2})
    assert response["model_version"] == "lin-1"
    assert [p["label"] for p in response["predictions"]] == ["sci.space", "rec.autos"]
