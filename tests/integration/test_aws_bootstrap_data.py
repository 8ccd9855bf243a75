"""`autobert aws bootstrap --data PATH` against moto (the fixtures of test_aws_ops): own data becomes the stack's
first dataset; a bad file stops bootstrap before anything is uploaded; another source after the first import is
refused."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from test_aws_ops import apigateway, aws, aws_region, run_bootstrap, settings, stack, store  # noqa: F401 (fixtures)

from autobert import layout
from autobert.errors import DataError


def csv(path, prefix: str, labels: str = "ab"):
    path.write_text("body,topic\n" + "".join(f"{prefix} document {i},{labels[i % 2]}\n" for i in range(20)))
    return path


def own(tmp_path, source, **over):
    return settings(data_source=str(source), text_column="body", label_column="topic", home=tmp_path / "home",
                    **over)


def test_bootstrap_with_data_imports_own_data_as_the_first_dataset(aws, apigateway, stack, store, tmp_path):  # noqa: F811
    source = csv(tmp_path / "tickets.csv", "ticket")
    report = run_bootstrap(aws, apigateway, tmp_path / "prepared", settings=own(tmp_path, source), wait=False,
                           prepare_data=True)
    current = store.get_json(layout.CURRENT_DATASET)
    assert report["dataset"] == current
    train = pd.read_parquet(io.BytesIO(store.get_bytes(layout.dataset_prefix(current["version"]) + "dataset.parquet")))
    assert set(train["label"]) == {"a", "b"} and train["text"].str.startswith("ticket document").all()
    # a later bootstrap with another file is refused: the first dataset is imported once
    with pytest.raises(DataError, match="the first dataset is already imported"):
        run_bootstrap(aws, apigateway, tmp_path / "prepared", settings=own(tmp_path, csv(tmp_path / "x.csv", "other")),
                      wait=False, prepare_data=True)


def test_bootstrap_with_a_bad_file_uploads_nothing(aws, apigateway, stack, store, tmp_path):  # noqa: F811
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nx,a\n")
    with pytest.raises(DataError, match="bad.csv: no column 'body'"):
        run_bootstrap(aws, apigateway, tmp_path / "prepared", settings=own(tmp_path, bad), prepare_data=True)
    assert store.list_keys("") == []
