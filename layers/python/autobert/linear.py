"""TF-IDF + linear SVM text model, stored without pickle (JSON vocabularies + safetensors arrays).

Fused with BERT's probabilities, it is the part of the served model that reads the whole document: BERT sees at most
``max_length`` tokens, the linear model sees every word, and their errors differ. The fused half uses
``SERVED_FEATURES``: word unigrams and bigrams and character 3-5-grams within words (a misspelt or inflected word
still shares most of its n-grams with the right one), each TF-IDF weighted and L2-normalised on its own, then joined.
``BASELINE_FEATURES`` (word unigrams alone: the classic TF-IDF + linear SVM) is what the quality benchmark measures
the served model against, and what the linear-only first model uses: it fits in seconds, which is what a first
answer needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from autobert.errors import ModelLoadError

WORDS = {"sublinear_tf": True, "min_df": 2, "lowercase": True}
# The feature sets a model can be fitted on (``train.py --linear-features``), measured on the temporal split of the
# 20NG train split (newest 20 % as test, 9,050 training documents; 2-core Intel Xeon; bench/linear_features.py):
# "words" scores 0.906 alone and fits in 2.5 s; "words+chars" 0.917 alone, and the served model fused with it 0.928
# (bench/train_quality.py, 2026-12-04), but it fits in 48-52 s (1,955 non-zeros a document against 141).
# The caps keep the 20-label weight matrix at 24 MB (the uncapped 792,000 features score 0.918).
FEATURE_SETS: dict[str, tuple[dict, ...]] = {
    "words": (WORDS,),
    "words+chars": ({**WORDS, "ngram_range": (1, 2), "max_features": 150_000},
                    {**WORDS, "analyzer": "char_wb", "ngram_range": (3, 5), "max_features": 150_000}),
}
BASELINE_FEATURES = FEATURE_SETS["words"]  # the classic TF-IDF + linear SVM
SERVED_FEATURES = FEATURE_SETS["words+chars"]  # the linear half fused with BERT
# What a saved vectorizer records to transform as it was fitted; VOCABULARY_PARAMS only chose its vocabulary, which is
# saved itself. A feature set may use no other TfidfVectorizer setting: a loaded model would transform differently.
SAVED_PARAMS = ("analyzer", "ngram_range", "sublinear_tf", "lowercase")
VOCABULARY_PARAMS = ("min_df", "max_df", "max_features")
VOCAB_FILE = "vocabulary.json"
ARRAYS_FILE = "linear.safetensors"


class LinearTextModel:
    """Scores texts for a fixed label list: ``decision_function`` gives one margin per label."""

    def __init__(self, vectorizers: list[TfidfVectorizer], coef: np.ndarray, intercept: np.ndarray, n_labels: int,
                 feature_set: str | None = None):
        self.vectorizers = vectorizers
        self.feature_set = feature_set  # the FEATURE_SETS name it was fitted with (None: another tuple)
        self.coef = coef.astype(np.float32)  # (n_labels, n_features of all vectorizers)
        self.intercept = intercept.astype(np.float32)
        self.n_labels = n_labels

    @classmethod
    def fit(cls, texts: list[str], label_ids: np.ndarray, n_labels: int, *,
            features: tuple[dict, ...] = SERVED_FEATURES, c: float = 1.0, seed: int = 42) -> LinearTextModel:
        """Fit on ``label_ids`` in ``[0, n_labels)``. Labels absent from the data get a very low constant score."""
        unsaved = {key for params in features for key in params} - set(SAVED_PARAMS) - set(VOCABULARY_PARAMS)
        if unsaved:
            raise ValueError(f"feature set settings {sorted(unsaved)} would not be saved with the model")
        vectorizers = []
        for params in features:
            params = dict(params)
            # min_df=2 would drop every word of a tiny (test or feedback-only) corpus.
            if len(texts) < 50:
                params["min_df"] = 1
            vectorizers.append(TfidfVectorizer(**params, dtype=np.float32))
        matrix = sp.hstack([v.fit_transform(texts) for v in vectorizers], format="csr")
        svm = LinearSVC(C=c, random_state=seed).fit(matrix, label_ids)
        coef = np.full((n_labels, matrix.shape[1]), 0.0, dtype=np.float32)
        intercept = np.full(n_labels, -10.0, dtype=np.float32)
        seen = svm.classes_.astype(int)
        if len(seen) == 2:  # binary LinearSVC keeps one hyperplane: scores are +m for classes_[1], -m for classes_[0]
            coef[seen[1]], intercept[seen[1]] = svm.coef_[0], svm.intercept_[0]
            coef[seen[0]], intercept[seen[0]] = -svm.coef_[0], -svm.intercept_[0]
        else:
            coef[seen], intercept[seen] = svm.coef_, svm.intercept_
        name = next((key for key, value in FEATURE_SETS.items() if value == tuple(features)), None)
        return cls(vectorizers, coef, intercept, n_labels, name)

    def features(self, texts: list[str]) -> sp.csr_matrix:
        return sp.hstack([v.transform(texts) for v in self.vectorizers], format="csr")

    def decision_function(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.features(texts) @ self.coef.T) + self.intercept

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        described = [{"params": {k: v for k, v in vectorizer.get_params().items() if k in SAVED_PARAMS},
                      "vocabulary": {term: int(i) for term, i in vectorizer.vocabulary_.items()}}
                     for vectorizer in self.vectorizers]
        (folder / VOCAB_FILE).write_text(json.dumps({"feature_set": self.feature_set, "vectorizers": described}))
        arrays = {f"idf_{i}": v.idf_.astype(np.float32) for i, v in enumerate(self.vectorizers)}
        save_file({**arrays, "coef": self.coef, "intercept": self.intercept}, str(folder / ARRAYS_FILE))

    @classmethod
    def load(cls, folder: Path) -> LinearTextModel:
        try:
            meta = json.loads((folder / VOCAB_FILE).read_text())
            arrays = load_file(str(folder / ARRAYS_FILE))
            return cls._from_saved(meta, arrays)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{folder}: unreadable linear model ({exc!r})") from exc

    @classmethod
    def _from_saved(cls, meta: dict, arrays: dict[str, np.ndarray]) -> LinearTextModel:
        if "vectorizers" in meta:
            described, feature_set = meta["vectorizers"], meta.get("feature_set")
            idfs = [arrays[f"idf_{i}"] for i in range(len(described))]
        else:  # saved before the feature sets: one word-unigram vectorizer ("params", "vocabulary", "idf")
            described, feature_set = [meta], "words"
            idfs = [arrays["idf"]]
        vectorizers = []
        for item, idf in zip(described, idfs, strict=True):
            params = {k: tuple(v) if isinstance(v, list) else v for k, v in item["params"].items()
                      if k in SAVED_PARAMS}
            if len(idf) != len(item["vocabulary"]):
                raise ValueError(f"{len(idf)} idf weights for {len(item['vocabulary'])} terms")
            vectorizer = TfidfVectorizer(**params, vocabulary=item["vocabulary"], dtype=np.float32)
            vectorizer.idf_ = idf
            vectorizers.append(vectorizer)
        width = sum(len(item["vocabulary"]) for item in described)
        if arrays["coef"].shape[1] != width:
            raise ValueError(f"{arrays['coef'].shape[1]} weights per label but {width} features")
        return cls(vectorizers, arrays["coef"], arrays["intercept"], arrays["coef"].shape[0], feature_set)
