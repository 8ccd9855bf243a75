"""training/train.py end to end on a small real sample with the tiny BERT, in both invocation styles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from autobert.data import read_labels
from autobert.modeling import TextClassifier

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "training" / "train.py"
sys.path.insert(0, str(REPO / "training"))
import train  # noqa: E402

pytestmark = pytest.mark.slow


def run_train(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TRAIN), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def trained(tiny_bert, small_dataset, tmp_path_factory) -> Path:
    """One model trained through command-line arguments, shared by the tests that inspect its folder."""
    out = tmp_path_factory.mktemp("trained")
    result = run_train(["--model-name", str(tiny_bert), "--train", str(small_dataset),
                        "--model-dir", str(out / "model"),
                        "--output-data-dir", str(out / "output"), "--epochs", "2", "--batch-size", "8",
                        "--max-length", "64", "--learning-rate", "1e-3", "--progress", "false"])
    assert result.returncode == 0, result.stderr
    return out


def test_the_model_folder_is_self_contained_and_pickle_free(trained):
    files = {p.name for p in (trained / "model").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "labels.json", "autobert.json",
            "metrics.json"} <= files
    assert not [p for p in (trained / "model").rglob("*") if p.suffix in (".bin", ".pt", ".pkl", ".pickle")]
    assert (trained / "model" / "linear" / "linear.safetensors").is_file()
    config = json.loads((trained / "model" / "config.json").read_text())
    assert list(config["id2label"].values()) == read_labels(trained / "model" / "labels.json")


def test_metrics_hold_accuracy_f1_per_class_scores_confusion_matrix_and_speed(trained):
    metrics = json.loads((trained / "output" / "metrics.json").read_text())
    assert metrics == json.loads((trained / "model" / "metrics.json").read_text())
    labels = metrics["labels"]
    assert labels == ["rec.autos", "sci.space", "talk.politics.guns"]
    test = metrics["test"]
    assert 0 <= test["accuracy"] <= 1 and 0 <= test["macro_f1"] <= 1
    assert set(test["per_class"]) == set(labels)
    assert {"precision", "recall", "f1", "support"} <= set(test["per_class"]["sci.space"])
    matrix = np.array(test["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == test["n"] == metrics["training"]["documents"]["test"]
    assert metrics["training"]["samples_per_second"] > 0 and metrics["training"]["wall_time_seconds"] > 0
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert set(metrics["components"]["test"]) == {"bert", "linear", "fused"}


def test_the_saved_model_loads_and_predicts_a_distribution_over_its_labels(trained, small_dataset):
    model = TextClassifier.load(trained / "model")
    texts = pd.read_parquet(small_dataset / "dataset.parquet")["text"].head(5).tolist()
    probs = model.predict_proba(texts)
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # The fused model learnt the sample: most training documents are classified right.
    df = pd.read_parquet(small_dataset / "dataset.parquet")
    predicted = [model.labels[i] for i in model.predict_proba(df["text"].tolist()).argmax(1)]
    assert np.mean(np.array(predicted) == df["label"].to_numpy()) > 0.8


@pytest.fixture(scope="module")
def trained_linear(small_dataset, tmp_path_factory) -> Path:
    """The linear model alone (``--model-kind linear``), scored on a holdout like any workflow run's model."""
    out = tmp_path_factory.mktemp("trained-linear")
    result = run_train(["--model-kind", "linear", "--train", str(small_dataset), "--holdout", str(small_dataset),
                        "--model-dir", str(out / "model"), "--output-data-dir", str(out / "output"),
                        "--progress", "false"])
    assert result.returncode == 0, result.stderr
    return out


def test_the_linear_kind_writes_a_servable_model_folder_without_any_encoder(trained_linear, small_dataset):
    model_dir = trained_linear / "model"
    assert {p.name for p in model_dir.iterdir()} == {"labels.json", "autobert.json", "linear", "metrics.json",
                                                     "holdout.json"}
    assert json.loads((model_dir / "autobert.json").read_text())["kind"] == "linear"
    metrics = json.loads((trained_linear / "output" / "metrics.json").read_text())
    assert metrics["model_kind"] == "linear" and metrics["labels"] == read_labels(model_dir / "labels.json")
    assert set(metrics["components"]["test"]) == {"linear", "fused"}
    assert metrics["test"]["n"] == metrics["training"]["documents"]["test"] > 0
    assert metrics["holdout"]["candidate"]["n"] == len(pd.read_parquet(small_dataset / "dataset.parquet"))
    assert metrics["fusion"]["weight"] == 1.0 and metrics["fusion"]["temperature"] > 0

    model = TextClassifier.load(model_dir)
    assert model.model is None and model.linear is not None
    df = pd.read_parquet(small_dataset / "dataset.parquet")
    probs = model.predict_proba(df["text"].tolist())
    assert probs.shape == (len(df), 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    predicted = np.array([model.labels[i] for i in probs.argmax(1)])
    assert np.mean(predicted == df["label"].to_numpy()) > 0.9
    # The holdout report says what the model predicts: the gate's input matches the served model.
    assert metrics["holdout"]["candidate"]["accuracy"] == pytest.approx(np.mean(predicted == df["label"]))


def test_the_saved_linear_model_is_refit_with_the_validation_documents_after_they_chose_its_settings(tmp_path):
    """``--linear-refit`` (default): the validation split first chooses the temperature (the fusion weight), then
    the saved TF-IDF model is fitted on training + validation documents; the internal test split stays out, and the
    reports are those of the model that never saw validation. Each pair word here is in exactly two documents, so it
    reaches the vocabulary (min_df 2) only when both of its documents are fitted."""
    from autobert.data import export_dataset, preprocess
    from autobert.linear import VOCAB_FILE

    rows = [(f"{label}/{k}", f"{label} news {label}story pair{label}x{k // 2} only{label}{k} words here", label)
            for label in ("alpha", "beta") for k in range(40)]
    df, labels, _ = preprocess(pd.DataFrame(rows, columns=["id", "text", "label"]), min_class_count=5)
    channel = export_dataset(df, labels, tmp_path / "channel")
    runs = {}
    for refit in ("true", "false"):
        out = tmp_path / refit
        assert train.main(["--model-kind", "linear", "--train", str(channel), "--model-dir", str(out / "model"),
                           "--output-data-dir", str(out / "output"), "--linear-refit", refit,
                           "--progress", "false"]) == 0
        (words,) = json.loads((out / "model" / "linear" / VOCAB_FILE).read_text())["vectorizers"]
        vocabulary = words["vocabulary"]
        runs[refit] = ({w for w in vocabulary if w.startswith("pair")},
                       json.loads((out / "output" / "metrics.json").read_text()))
    _, train_part, val_part, test_part = train.load_splits(train.parse_args([
        "--model-kind", "linear", "--train", str(channel), "--model-dir", str(tmp_path / "x")]))

    def pairs(*frames) -> set[str]:
        """The pair words both of whose documents are in ``frames``."""
        words = [w for frame in frames for text in frame["text"] for w in text.split() if w.startswith("pair")]
        return {w for w in set(words) if words.count(w) == 2}

    assert runs["false"][0] == pairs(train_part)
    assert runs["true"][0] == pairs(train_part, val_part) > pairs(train_part)
    # The reports are the validation-blind model's, the same in both runs.
    assert runs["true"][1]["validation"] == runs["false"][1]["validation"]
    assert runs["true"][1]["test"] == runs["false"][1]["test"]


def test_a_linear_model_cannot_be_warm_started_from_and_a_linear_run_continues_no_model(
        trained_linear, small_dataset, tiny_bert, tmp_path, capsys):
    base = ["--train", str(small_dataset), "--model-dir", str(tmp_path / "m"), "--progress", "false"]
    assert train.main([*base, "--init-model", str(trained_linear / "model")]) == 2
    err = capsys.readouterr().err
    assert "a 'linear' model has no encoder to continue from" in err and "Traceback" not in err
    assert train.main([*base, "--model-kind", "linear", "--init-model", str(trained_linear / "model")]) == 2
    assert "drop --init-model" in capsys.readouterr().err


def test_the_sagemaker_environment_contract_runs_the_same_script(tiny_bert, small_dataset, tmp_path):
    env = {"SM_CHANNEL_TRAIN": str(small_dataset), "SM_MODEL_DIR": str(tmp_path / "model"),
           "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"), "TRAINING_JOB_NAME": "autobert-job-7"}
    # SageMaker passes every hyperparameter as a string, booleans as True/False.
    result = run_train(["--model-name", str(tiny_bert), "--epochs", "1", "--fusion", "False",
                        "--progress", "False", "--max-length", "32"], env)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "output" / "metrics.json").read_text())
    assert metrics["model_version"] == "autobert-job-7"
    assert not (tmp_path / "model" / "linear").exists()
    assert metrics["fusion"]["weight"] == 0
    # One fixed-form log line per epoch (SageMaker's tuner parses it with regexes).
    assert "epoch=1 train_loss=" in result.stderr and "val_macro_f1=" in result.stderr


def test_warm_start_grows_the_head_for_a_new_label_and_keeps_old_rows(trained, small_dataset, tmp_path):
    old = TextClassifier.load(trained / "model")
    grown = train.grow_classifier(old.model, 5)
    assert grown.classifier.out_features == 5
    reloaded = TextClassifier.load(trained / "model")
    assert torch.equal(grown.classifier.weight[:3], reloaded.model.classifier.weight)
    assert torch.equal(grown.classifier.bias[:3], reloaded.model.classifier.bias)

    df = pd.read_parquet(small_dataset / "dataset.parquet")
    extra = df[df["label"] == "sci.space"].head(6).assign(label="astro.new")
    channel = tmp_path / "channel"
    channel.mkdir()
    pd.concat([df, extra]).to_parquet(channel / "data.parquet")
    assert train.main(["--init-model", str(trained / "model"), "--train", str(channel), "--model-dir",
                       str(tmp_path / "warm"), "--epochs", "1", "--progress", "false", "--max-length", "32",
                       "--holdout", str(small_dataset)]) == 0
    warm = TextClassifier.load(tmp_path / "warm")
    assert warm.labels == ["rec.autos", "sci.space", "talk.politics.guns", "astro.new"]
    evaluation = json.loads((tmp_path / "warm" / "holdout.json").read_text())
    assert evaluation["live_version"] == old.version
    assert evaluation["candidate"]["n"] == evaluation["live"]["n"] == len(df)
    # The gate's sign-test counts, recounted document by document: per class, the holdout documents whose error
    # involves it that the candidate (the warm model) alone, or the live (init) model alone, gets wrong.
    texts, truth = df["text"].tolist(), df["label"].tolist()
    cand = [warm.labels[i] for i in warm.predict_proba(texts).argmax(1)]
    live = [reloaded.labels[i] for i in reloaded.predict_proba(texts).argmax(1)]  # (old.model was grown above)
    rows = list(zip(cand, live, truth, strict=True))
    for label in evaluation["labels"]:
        cand_wrong = [c != t and label in (c, t) for c, _, t in rows]
        live_wrong = [v != t and label in (v, t) for _, v, t in rows]
        expected = {"candidate_only_errors": sum(c and not v for c, v in zip(cand_wrong, live_wrong, strict=True)),
                    "live_only_errors": sum(v and not c for c, v in zip(cand_wrong, live_wrong, strict=True))}
        assert evaluation["paired"][label] == expected, label


@pytest.mark.parametrize(("options", "kept"), [([], True), (["--keep-init-fusion", "false"], False),
                                              (["--linear-features", "words"], False)])
def test_a_warm_start_keeps_the_init_models_fusion_settings_unless_they_no_longer_fit(trained, small_dataset,
                                                                                      tmp_path, options, kept):
    """``--keep-init-fusion`` (default): the weight and temperature the init model chose on documents it had never
    seen stay (a warm start's validation sample comes from documents the init model trained on), unless told to
    choose, or unless this run's TF-IDF half reads another feature set than the init's (``words+chars``). The
    init's weight is set off the search grid (multiples of 0.05), so a chosen one cannot equal it."""
    init = tmp_path / "init"
    shutil.copytree(trained / "model", init)
    meta = json.loads((init / "autobert.json").read_text())
    (init / "autobert.json").write_text(json.dumps({**meta, "fusion_weight": 0.737, "fusion_temperature": 3.0}))
    assert train.main(["--init-model", str(init), "--train", str(small_dataset), "--model-dir", str(tmp_path / "warm"),
                       "--epochs", "1", "--progress", "false", "--max-length", "32", *options]) == 0
    warm = json.loads((tmp_path / "warm" / "autobert.json").read_text())
    assert ((warm["fusion_weight"], warm["fusion_temperature"]) == (0.737, 3.0)) == kept


@pytest.mark.parametrize(("args", "message"), [
    (["--model-name", "/no/such/model"], "--model-name /no/such/model: cannot load model"),
    (["--learning-rate", "5"], "--learning-rate must be in (0, 1)"),
    (["--epochs", "0"], "--epochs must be > 0"),
    (["--max-length", "4096"], "--max-length must be in [8, 512]"),
    (["--init-model", "/no/such/folder"], "--init-model /no/such/folder: not a model folder"),
])
def test_bad_hyperparameters_exit_non_zero_with_one_clear_message(args, message, small_dataset, tiny_bert, tmp_path,
                                                                   capsys):
    base = ["--model-name", str(tiny_bert), "--train", str(small_dataset), "--model-dir", str(tmp_path / "m"),
            "--progress", "false"]
    assert train.main([*base, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_empty_channel_and_single_class_data_are_clear_errors(tiny_bert, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    base = ["--model-name", str(tiny_bert), "--model-dir", str(tmp_path / "m"), "--progress", "false"]
    assert train.main([*base, "--train", str(tmp_path / "empty")]) == 2
    assert "no .parquet files in data channel" in capsys.readouterr().err
    (tmp_path / "one").mkdir()
    pd.DataFrame({"text": ["a b", "c d", "e f"], "label": ["x", "x", "x"]}).to_parquet(tmp_path / "one" / "d.parquet")
    assert train.main([*base, "--train", str(tmp_path / "one")]) == 2
    assert "1 class(es); at least 2 are needed" in capsys.readouterr().err


def test_the_stratified_split_is_deterministic_and_keeps_rare_labels_for_training():
    df = pd.DataFrame({"text": [f"t{i}" for i in range(103)],
                       "label": ["a"] * 50 + ["b"] * 50 + ["new"] * 3})
    train_df, val_df, test_df = train.stratified_split(df, (0.1, 0.1), seed=3)
    again = train.stratified_split(df, (0.1, 0.1), seed=3)
    assert train_df.equals(again[0]) and val_df.equals(again[1])
    assert val_df["label"].value_counts().to_dict() == {"a": 5, "b": 5}
    assert test_df["label"].value_counts().to_dict() == {"a": 5, "b": 5}
    assert (train_df["label"] == "new").sum() == 3
    assert len(train_df) + len(val_df) + len(test_df) == len(df)
    assert not set(train_df["text"]) & set(val_df["text"])


def test_on_sagemaker_the_model_artifact_carries_the_serving_code(tiny_bert, small_dataset, tmp_path):
    """SageMaker's source dir puts train.py, autobert/ and inference/ side by side: the model gets code/."""

    src = tmp_path / "sourcedir"
    src.mkdir()
    shutil.copy2(TRAIN, src / "train.py")
    shutil.copytree(REPO / "inference", src / "inference", ignore=shutil.ignore_patterns("__pycache__"))
    env = {"SM_CHANNEL_TRAIN": str(small_dataset), "SM_MODEL_DIR": str(tmp_path / "model")}
    result = subprocess.run([sys.executable, str(src / "train.py"), "--model-name", str(tiny_bert), "--epochs", "1",
                             "--max-length", "32", "--progress", "false", "--fusion", "false"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    code = tmp_path / "model" / "code"
    assert (code / "inference.py").read_text() == (REPO / "inference" / "inference.py").read_text()
    assert (code / "autobert" / "modeling.py").is_file()


def test_a_local_run_leaves_no_code_folder_in_the_model(trained):
    assert not (trained / "model" / "code").exists()


def test_a_warm_start_channel_holding_sagemakers_model_tar_gz_is_unpacked(trained, small_dataset, tmp_path):
    """On SageMaker the live model arrives as a channel folder holding model.tar.gz."""
    import tarfile

    channel = tmp_path / "live"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        for file in (trained / "model").iterdir():
            tar.add(file, arcname=file.name)
    assert train.main(["--init-model", str(channel), "--train", str(small_dataset), "--model-dir",
                       str(tmp_path / "warm"), "--epochs", "1", "--progress", "false", "--max-length", "32",
                       "--holdout", str(small_dataset)]) == 0
    evaluation = json.loads((tmp_path / "warm" / "holdout.json").read_text())
    assert evaluation["live_version"] == TextClassifier.load(trained / "model").version
    assert json.loads((tmp_path / "warm" / "metrics.json").read_text())["init_model"] == str(channel)


@pytest.mark.parametrize("refit", ["true", "false"])
def test_the_linear_model_also_fits_the_fusion_channel_and_the_validation_split_only_in_its_refit(
        tiny_bert, small_dataset, tmp_path, refit):
    """The fusion channel's documents reach the linear model; the validation split's only in the refit done after
    it chose the fusion settings (``--linear-refit``; the internal test split never: see the refit test above)."""
    df = pd.read_parquet(small_dataset / "dataset.parquet")
    channel = tmp_path / "train"
    channel.mkdir()
    df.groupby("label").head(12).to_parquet(channel / "d.parquet")  # the warm trainset: a small sample
    fusion = tmp_path / "fusion"
    fusion.mkdir()
    only_in_fusion = pd.DataFrame({"text": ["zyxwordfusion orbit"] * 3, "label": ["sci.space"] * 3})
    pd.concat([df, only_in_fusion]).to_parquet(fusion / "d.parquet")
    validation = tmp_path / "validation"
    validation.mkdir()
    val = pd.DataFrame({"text": ["qqvalidationonly engine"] * 3, "label": ["rec.autos"] * 3})
    val.to_parquet(validation / "v.parquet")
    pd.concat([df, only_in_fusion, val]).to_parquet(fusion / "d.parquet")
    assert train.main(["--model-name", str(tiny_bert), "--train", str(channel), "--validation", str(validation),
                       "--fusion-data", str(fusion), "--model-dir", str(tmp_path / "m"), "--epochs", "1",
                       "--max-length", "32", "--progress", "false", "--test-fraction", "0",
                       "--linear-refit", refit]) == 0
    vectorizers = json.loads((tmp_path / "m" / "linear" / "vocabulary.json").read_text())["vectorizers"]
    # a BERT run's linear half reads words and character n-grams (a linear-only model words alone: the test above)
    assert [v["params"]["analyzer"] for v in vectorizers] == ["word", "char_wb"]
    vocabulary = vectorizers[0]["vocabulary"]
    assert "zyxwordfusion" in vocabulary
    assert ("qqvalidationonly" in vocabulary) == (refit == "true")


def test_a_new_label_starts_from_its_documents_features_not_from_noise(trained, small_dataset, newsgroups):
    """Weight imprinting: the grown row of a label the init model never knew points at its documents' features."""
    known = pd.read_parquet(small_dataset / "dataset.parquet")
    graphics = newsgroups[newsgroups["label"] == "comp.graphics"]
    seen, unseen = graphics.iloc[:12], graphics.iloc[12:52]
    old = TextClassifier.load(trained / "model")
    labels = old.labels + ["comp.graphics"]
    frame = pd.concat([known, seen, seen])  # the feedback copies, as a warm trainset repeats them
    ids = train.encode(old.tokenizer, frame["text"].tolist(), 64, "head_tail")
    y = frame["label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    precision, device, pad = train.device_precision("fp32", torch.device("cpu")), torch.device("cpu"), 0

    def new_label_share(model, texts: list[str]) -> float:
        feats = train.head_features(model, train.encode(old.tokenizer, texts, 64, "head_tail"), pad, 16,
                                    precision, device)
        with torch.no_grad():
            return float(np.mean((model.classifier(feats).argmax(1) == 3).numpy()))

    noise = train.grow_classifier(TextClassifier.load(trained / "model").model, 4)
    model = train.grow_classifier(old.model, 4)
    assert train.imprint_new_labels(model, 3, ids, y, pad, 16, precision, device, seed=0) == [3]
    reloaded = TextClassifier.load(trained / "model").model.classifier
    assert torch.equal(model.classifier.weight[:3], reloaded.weight)
    assert torch.equal(model.classifier.bias[:3], reloaded.bias)
    # Its bias ties it, on average over its own documents, with the best known label.
    feats = train.head_features(model, train.encode(old.tokenizer, seen["text"].tolist(), 64, "head_tail"), pad,
                                16, precision, device)
    with torch.no_grad():
        logits = model.classifier(feats)
    assert float((logits[:, 3] - logits[:, :3].max(1).values).mean()) == pytest.approx(0, abs=1e-4)
    unseen_share, known_share = new_label_share(model, unseen["text"].tolist()), new_label_share(
        model, known["text"].tolist())
    assert unseen_share > known_share
    assert unseen_share > new_label_share(noise, unseen["text"].tolist())


def test_two_processes_under_torchrun_train_one_model_and_write_one_report(tiny_bert, small_dataset, tmp_path):
    """Data-parallel on this CPU: ``torchrun --nproc-per-node 2`` (gloo). Rank 0 alone writes the model folder
    and the metrics; its epoch lines count the samples of both ranks; the endpoint's script loads the model."""
    torchrun = Path(sys.executable).with_name("torchrun")
    args = ["--model-name", str(tiny_bert), "--train", str(small_dataset), "--epochs", "2", "--batch-size", "8",
            "--max-length", "32", "--learning-rate", "1e-3", "--progress", "false"]
    out = {}
    # --standalone: a rendezvous on a free local port (nothing else to configure on one machine)
    launchers = {"one": [sys.executable], "two": [str(torchrun), "--standalone", "--nproc-per-node", "2"]}
    for name, launcher in launchers.items():
        result = subprocess.run([*launcher, str(TRAIN), *args, "--model-dir", str(tmp_path / name / "model"),
                                 "--output-data-dir", str(tmp_path / name / "output")],
                                capture_output=True, text=True, timeout=300,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr[-3000:]
        out[name] = (json.loads((tmp_path / name / "output" / "metrics.json").read_text()), result.stderr)
    (one, _), (two, log) = out["one"], out["two"]
    assert two["labels"] == one["labels"]
    assert log.count("autobert.train: epoch=1 ") == 1 and log.count("done: model=") == 1  # rank 0's lines only
    # Each epoch covers the training split once across the two ranks (DistributedSampler pads to an even split).
    train_docs = one["training"]["documents"]["train"]
    assert one["training"]["samples"] == 2 * train_docs
    assert 2 * train_docs <= two["training"]["samples"] <= 2 * (train_docs + 1)
    assert len(two["history"]) == 2 and all(0 <= h["val_accuracy"] <= 1 for h in two["history"])
    script = load_module_from(REPO / "inference" / "inference.py")
    model = script.model_fn(str(tmp_path / "two" / "model"))
    answer = script.predict_fn(script.input_fn(json.dumps({"instances": ["the shuttle", "my car"]}),
                                               "application/json"), model)
    assert [p["label"] in two["labels"] for p in answer["predictions"]] == [True, True]


def test_under_torchrun_every_rank_resumes_from_the_checkpoint_rank_0_chose(tiny_bert, small_dataset, tmp_path):
    """A restarted data-parallel job (spot): rank 0 picks the checkpoint and every rank loads that one (on several
    instances each has its own copy of the folder); the rerun ends at once with the same model, no rank hangs."""
    torchrun = Path(sys.executable).with_name("torchrun")
    args = [str(torchrun), "--standalone", "--nproc-per-node", "2", str(TRAIN), "--model-name", str(tiny_bert),
            "--train", str(small_dataset), "--epochs", "2", "--batch-size", "8", "--max-length", "32",
            "--learning-rate", "1e-3", "--progress", "false", "--fusion", "false", "--precision", "fp32",
            "--checkpoint-dir", str(tmp_path / "checkpoints"), "--model-dir", str(tmp_path / "model"),
            "--output-data-dir", str(tmp_path / "output"), "--model-version", "v-ddp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    trained = json.loads((tmp_path / "output" / "metrics.json").read_text())
    again = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("resumed from checkpoint epoch=2 ") == 1  # rank 0's line; rank 1 loaded it too
    assert "autobert.train: epoch=" not in again.stderr  # nothing left to train on either rank
    resumed = json.loads((tmp_path / "output" / "metrics.json").read_text())
    assert resumed["training"]["resumed_from_epoch"] == 2
    assert resumed["history"] == trained["history"]


def load_module_from(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("inference_ddp_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
