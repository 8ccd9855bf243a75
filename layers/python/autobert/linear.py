"""TF-IDF + linear SVM text model, stored without pickle (JSON vocabulary + safetensors arrays).

It is the benchmark's baseline and, fused with BERT's probabilities, the part of the served model that reads the
whole document: BERT sees at most ``max_length`` tokens, the linear model sees every word, and their errors differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from autobert.errors import ModelLoadError

VECTORIZER_PARAMS = {"sublinear_tf": True, "min_df": 2, "lowercase": True}
VOCAB_FILE = "vocabulary.json"
ARRAYS_FILE = "linear.safetensors"


class LinearTextModel:
    """Scores texts for a fixed label list: ``decision_function`` gives one margin per label."""

    def __init__(self, vectorizer: TfidfVectorizer, coef: np.ndarray, intercept: np.ndarray, n_labels: int):
        self.vectorizer = vectorizer
        self.coef = coef.astype(np.float32)  # (n_classes_seen, n_features)
        self.intercept = intercept.astype(np.float32)
        self.n_labels = n_labels

    @classmethod
    def fit(cls, texts: list[str], label_ids: np.ndarray, n_labels: int, *, c: float = 1.0, seed: int = 42):
        """Fit on ``label_ids`` in ``[0, n_labels)``. Labels absent from the data get a very low constant score."""
        params = dict(VECTORIZER_PARAMS)
        # min_df=2 would drop every word of a tiny (test or feedback-only) corpus.
        if len(texts) < 50:
            params["min_df"] = 1
        vectorizer = TfidfVectorizer(**params, dtype=np.float32)
        features = vectorizer.fit_transform(texts)
        svm = LinearSVC(C=c, random_state=seed).fit(features, label_ids)
        coef = np.full((n_labels, features.shape[1]), 0.0, dtype=np.float32)
        intercept = np.full(n_labels, -10.0, dtype=np.float32)
        seen = svm.classes_.astype(int)
        if len(seen) == 2:  # binary LinearSVC keeps one hyperplane: scores are +m for classes_[1], -m for classes_[0]
            coef[seen[1]], intercept[seen[1]] = svm.coef_[0], svm.intercept_[0]
            coef[seen[0]], intercept[seen[0]] = -svm.coef_[0], -svm.intercept_[0]
        else:
            coef[seen], intercept[seen] = svm.coef_, svm.intercept_
        return cls(vectorizer, coef, intercept, n_labels)

    def decision_function(self, texts: list[str]) -> np.ndarray:
        features = self.vectorizer.transform(texts)
        return np.asarray(features @ self.coef.T) + self.intercept

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        vocab = {word: int(i) for word, i in self.vectorizer.vocabulary_.items()}
        params = {k: v for k, v in VECTORIZER_PARAMS.items() if k != "min_df"}
        (folder / VOCAB_FILE).write_text(json.dumps({"params": params, "vocabulary": vocab}))
        save_file(
            {"idf": self.vectorizer.idf_.astype(np.float32), "coef": self.coef, "intercept": self.intercept},
            str(folder / ARRAYS_FILE),
        )

    @classmethod
    def load(cls, folder: Path) -> LinearTextModel:
        try:
            meta = json.loads((folder / VOCAB_FILE).read_text())
            arrays = load_file(str(folder / ARRAYS_FILE))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{folder}: unreadable linear model ({exc})") from exc
        params = {k: v for k, v in meta["params"].items() if k != "dtype"}
        vectorizer = TfidfVectorizer(**params, vocabulary=meta["vocabulary"], dtype=np.float32)
        vectorizer.idf_ = arrays["idf"]
        return cls(vectorizer, arrays["coef"], arrays["intercept"], arrays["coef"].shape[0])
