"""checkov on the packaged template: no failed check; each finding not fixed is skipped in the template
(``Metadata.checkov.skip``) with its written reason.

checkov runs from its own virtualenv (``.venv-checkov``, from the pinned requirements-checkov.txt): ``make setup``
creates it, and so does this module's fixture when it is missing (its dependencies conflict with the main venv's).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from osls_package import REPO, package, requires_osls

pytestmark = [requires_osls, pytest.mark.slow]

CHECKOV_VENV = REPO / ".venv-checkov"
CHECKOV = CHECKOV_VENV / "bin" / "checkov"
STAMP = CHECKOV_VENV / ".installed-stamp"
REQUIREMENTS = REPO / "requirements-checkov.txt"


@pytest.fixture(scope="module")
def checkov() -> Path:
    if not STAMP.exists() or STAMP.stat().st_mtime < REQUIREMENTS.stat().st_mtime:
        subprocess.run(["make", f"PYTHON={sys.executable}", str(STAMP.relative_to(REPO))], cwd=REPO, check=True,
                       timeout=900)
    return CHECKOV


def run_checkov(checkov: Path, template: dict, folder: Path) -> dict:
    path = folder / "template.json"
    path.write_text(json.dumps(template))
    proc = subprocess.run([str(checkov), "-f", str(path), "--framework", "cloudformation", "-o", "json", "--compact",
                           "--skip-download"], capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]  # 1: some check failed
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_fails_no_check_and_every_skip_has_a_reason(checkov, tmp_path):
    report = run_checkov(checkov, package().template, tmp_path)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] > 50
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["results"]["failed_checks"]]
    assert failed == []
    skipped = report["results"]["skipped_checks"]
    assert skipped and all(len((c.get("check_result") or {}).get("suppress_comment", "").strip()) > 20
                           for c in skipped)


def test_checkov_would_fail_an_api_function_without_reserved_concurrency(checkov, tmp_path):
    template = json.loads(json.dumps(package().template))
    del template["Resources"]["PredictLambdaFunction"]["Properties"]["ReservedConcurrentExecutions"]
    report = run_checkov(checkov, template, tmp_path)
    assert [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]] == [
        ("CKV_AWS_115", "AWS::Lambda::Function.PredictLambdaFunction")]
