"""The TF-IDF linear model: its feature sets, its pickle-free folder, and models saved before the feature sets."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from autobert.errors import ModelLoadError
from autobert.linear import ARRAYS_FILE, BASELINE_FEATURES, SERVED_FEATURES, VOCAB_FILE, LinearTextModel

TOPICS = {0: ["encryption keys secure", "public key encryption", "secret encryption scheme"],
          1: ["hockey goals tonight", "hockey season playoffs", "goalie saves hockey"],
          2: ["engine oil car", "car dealer price", "new car engine"]}
TEXTS = [text for label in TOPICS for text in TOPICS[label]]
LABELS = np.repeat(list(TOPICS), 3)


def test_a_word_the_training_data_never_had_is_still_read_through_its_character_ngrams():
    """The served features read an unseen inflection ("encrypted") through the 3-5-grams it shares with
    "encryption"; word unigrams alone have no feature for it at all."""
    served = LinearTextModel.fit(TEXTS, LABELS, 3, features=SERVED_FEATURES)
    words = LinearTextModel.fit(TEXTS, LABELS, 3, features=BASELINE_FEATURES)

    assert words.features(["encrypted"]).nnz == 0
    assert served.features(["encrypted"]).nnz > 0
    assert served.decision_function(["encrypted"]).argmax() == 0


def test_the_served_features_add_word_pairs_and_character_ngrams_to_the_words():
    served = LinearTextModel.fit(TEXTS, LABELS, 3)  # SERVED_FEATURES is the default

    word_terms, char_terms = (set(v.vocabulary_) for v in served.vectorizers)
    assert {"hockey", "public key"} <= word_terms
    assert {"enc", "ncryp", "hock"} <= char_terms
    assert served.coef.shape == (3, len(word_terms) + len(char_terms))


def test_a_saved_model_loads_back_scoring_the_same_and_holds_no_pickle(tmp_path):
    model = LinearTextModel.fit(TEXTS, LABELS, 4)  # label 3 has no data: a constant very low score
    model.save(tmp_path)
    loaded = LinearTextModel.load(tmp_path)

    # repeated and capitalised words: a loaded model must still lowercase and damp term counts (sublinear_tf)
    probe = ["encrypted hockey", "Hockey hockey HOCKEY car", "a car with an engine", "nothing known here"]
    np.testing.assert_allclose(loaded.decision_function(probe), model.decision_function(probe), rtol=1e-6)
    assert loaded.feature_set == model.feature_set == "words+chars"
    assert (loaded.decision_function(probe)[:, 3] == -10).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([VOCAB_FILE, ARRAYS_FILE])
    saved = json.loads((tmp_path / VOCAB_FILE).read_text())["vectorizers"]
    assert [item["params"]["analyzer"] for item in saved] == ["word", "char_wb"]


def test_a_model_saved_with_one_word_vectorizer_before_the_feature_sets_still_loads(tmp_path):
    """A live model written by the earlier version (``params``/``vocabulary`` at the top, one ``idf``) keeps serving
    after an upgrade."""
    words = LinearTextModel.fit(TEXTS, LABELS, 3, features=BASELINE_FEATURES)
    vectorizer = words.vectorizers[0]
    (tmp_path / VOCAB_FILE).write_text(json.dumps({
        "params": {"sublinear_tf": True, "lowercase": True},
        "vocabulary": {term: int(i) for term, i in vectorizer.vocabulary_.items()}}))
    save_file({"idf": vectorizer.idf_, "coef": words.coef, "intercept": words.intercept}, str(tmp_path / ARRAYS_FILE))

    loaded = LinearTextModel.load(tmp_path)

    probe = [*TEXTS, "Hockey hockey HOCKEY car"]
    np.testing.assert_allclose(loaded.decision_function(probe), words.decision_function(probe), rtol=1e-6)
    assert loaded.feature_set == "words"


def test_weights_that_do_not_match_the_vocabularies_are_refused_on_load(tmp_path):
    model = LinearTextModel.fit(TEXTS, LABELS, 3)
    model.save(tmp_path)
    arrays = load_file(str(tmp_path / ARRAYS_FILE))
    save_file({**arrays, "coef": arrays["coef"][:, :-1].copy()}, str(tmp_path / ARRAYS_FILE))

    with pytest.raises(ModelLoadError, match="weights per label"):
        LinearTextModel.load(tmp_path)


def test_a_feature_set_setting_the_saved_model_would_not_keep_is_refused():
    with pytest.raises(ValueError, match="stop_words"):
        LinearTextModel.fit(TEXTS, LABELS, 3, features=({"stop_words": "english"},))


def test_a_folder_missing_an_array_is_a_model_load_error(tmp_path):
    model = LinearTextModel.fit(TEXTS, LABELS, 3)
    model.save(tmp_path)
    arrays = load_file(str(tmp_path / ARRAYS_FILE))
    del arrays["idf_1"]
    save_file(arrays, str(tmp_path / ARRAYS_FILE))

    with pytest.raises(ModelLoadError, match="idf_1"):
        LinearTextModel.load(tmp_path)
