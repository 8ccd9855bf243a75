"""One correction is learnt at the default feedback settings: a warm start from the live model, built the way the
workflow builds it (merge, warm trainset with ``feedback_repeat`` copies and ``replay_per_class`` replayed documents,
the warm-start epochs and learning rate), predicts the corrected label for the corrected text. Tiny BERT: seconds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from autobert import layout
from autobert.bootstrap import Services
from autobert.config import Settings
from autobert.data import LABELS_FILE, read_dataset, read_labels
from autobert.feedback import FeedbackStore
from autobert.modeling import TextClassifier
from autobert.workflow.merge import build_warm_trainset, import_initial_dataset, merge_feedback
from autobert.workflow.steps import training_hyperparameters

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "training"))
import train  # noqa: E402

pytestmark = pytest.mark.slow


def run_job(hyperparameters: dict[str, str], channels: dict[str, str], model_dir: Path) -> TextClassifier:
    """train.py as the local training job runs it: every hyperparameter as ``--name value``, channels as folders."""
    args = [arg for k, v in hyperparameters.items() for arg in (f"--{k}", v)]
    option = {"train": "--train", "validation": "--validation", "holdout": "--holdout", "fusion": "--fusion-data"}
    args += [arg for k, v in channels.items() for arg in (option[k], v)]
    assert train.main([*args, "--model-dir", str(model_dir)]) == 0
    return TextClassifier.load(model_dir)


def test_a_single_correction_is_learnt_at_the_default_feedback_settings(tiny_bert, small_dataset, newsgroups,
                                                                         tmp_path):
    settings = Settings(home=tmp_path / "home", model_name=str(tiny_bert))  # every feedback setting at its default
    services = Services(settings)
    store = services.store
    dataset = read_dataset(small_dataset)
    labels = read_labels(small_dataset / LABELS_FILE)
    first = import_initial_dataset(store, dataset, labels, holdout_fraction=settings.holdout_fraction,
                                   seed=settings.seed)
    holdout = store.uri(layout.holdout_prefix(first["holdout"]))

    # The live model: a full training on the first dataset version, as the bootstrap run trains it.
    live = run_job(training_hyperparameters(services, "v-live", warm=False, init_path=None),
                   {"train": store.uri(layout.dataset_prefix(first["version"])), "holdout": holdout},
                   tmp_path / "live")

    # A new document of these groups that the live model gets wrong; the user posts its right label.
    known = set(dataset["text"].str.strip())
    fresh = newsgroups[newsgroups["label"].isin(labels) & ~newsgroups["text"].str.strip().isin(known)]
    fresh = fresh.groupby("label").head(30)
    predicted = [live.labels[i] for i in live.predict_proba(fresh["text"].tolist()).argmax(1)]
    wrong = [(text, label, guess) for text, label, guess in zip(fresh["text"], fresh["label"], predicted, strict=True)
             if guess != label]
    assert wrong, "the live model got every fresh document right: no correction to make"
    text, label, guess = wrong[0]
    FeedbackStore(store, allow_new_labels=True).submit(text, label, predicted_label=guess)

    # The warm-start retrain with the workflow's defaults.
    merged = merge_feedback(store)
    assert merged.merged and merged.dataset_version != first["version"]
    channels = build_warm_trainset(store, merged.dataset_version, first["version"],
                                   replay_per_class=settings.replay_per_class,
                                   validation_per_class=settings.replay_validation_per_class,
                                   feedback_repeat=settings.feedback_repeat, seed=settings.seed)
    # The channels StartTraining gives the job (steps.training_inputs): no validation channel when the replay took
    # every document (then train.py splits its own off the training channel).
    jobs = {"train": store.uri(channels["train"]), "fusion": store.uri(layout.dataset_prefix(merged.dataset_version)),
            "holdout": holdout}
    if channels["validation"]:
        jobs["validation"] = store.uri(channels["validation"])
    hyperparameters = training_hyperparameters(services, "v-warm", warm=True, init_path=str(tmp_path / "live"))
    assert (hyperparameters["epochs"], hyperparameters["learning-rate"]) == (str(settings.warm_epochs),
                                                                            str(settings.warm_learning_rate))
    warm = run_job(hyperparameters, jobs, tmp_path / "warm")

    assert warm.labels[int(warm.predict_proba([text]).argmax(1)[0])] == label
