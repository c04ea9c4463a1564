"""The promotion gate, through its command line, on the example variants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modeldeploy.cli import main
from modeldeploy.server.gate import GateError, parse_minimums


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gate") / "eval.csv"
    assert main(["example-data", str(path), "--rows", "1500", "--seed", "1000"]) == 0
    return path


def gate(candidate: Any, current: Any, data: Path, *extra: str, pin: bool = True) -> int:
    pins = ["--current-sha256", current.sha256] if pin else []
    if pin and "--candidate-sha256" not in extra:
        pins += ["--candidate-sha256", candidate.sha256]
    return main(
        [
            "gate",
            str(candidate.path),
            "--current",
            str(current.path),
            "--data",
            str(data),
            *pins,
            *extra,
        ]
    )


def test_no_digest_no_unpickling_unless_told_to_trust_the_card(
    bundles: dict[str, Any], data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gate(bundles["good2"], bundles["good"], data, pin=False) == 2
    err = capsys.readouterr().err
    assert "no digest given for the candidate bundle" in err and "--trust-card" in err
    assert gate(bundles["good2"], bundles["good"], data, "--trust-card", pin=False) == 0
    assert "verdict: PROMOTE" in capsys.readouterr().out


def test_a_healthy_retrain_earns_promotion(
    bundles: dict[str, Any], data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        gate(
            bundles["good2"],
            bundles["good"],
            data,
            "--min",
            "roc_auc=0.7",
            "--min",
            "accuracy=0.75",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "verdict: PROMOTE" in out
    assert (
        "minimum roc_auc" in out and "direction: error_pct increasing" in out and "FAIL" not in out
    )


def test_a_diverging_model_is_refused_with_reasons(
    bundles: dict[str, Any], data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gate(bundles["diverging"], bundles["good"], data) == 1
    out = capsys.readouterr().out
    assert "verdict: REJECT" in out
    assert "vs current: accuracy" in out and "FAIL" in out
    assert "standard errors" in out


def test_thresholds_alone_can_refuse(
    bundles: dict[str, Any], data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gate(bundles["good2"], bundles["good"], data, "--min", "roc_auc=0.99") == 1
    assert "minimum roc_auc" in capsys.readouterr().out


def test_the_drifted_model_loses_on_todays_data(bundles: dict[str, Any], data: Path) -> None:
    assert gate(bundles["drifted"], bundles["good"], data) == 1


def test_bad_arguments_are_errors_not_verdicts(
    bundles: dict[str, Any], data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(GateError, match="lower is better"):
        parse_minimums(["log_loss=0.3"])
    with pytest.raises(GateError, match="unknown metric"):
        parse_minimums(["f1=0.3"])
    assert gate(bundles["good2"], bundles["good"], data, "--min", "roc_auc") == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("request_rate,error_pct\n1,2\n")
    assert gate(bundles["good2"], bundles["good"], bad) == 2
    assert "missing column" in capsys.readouterr().err
    assert (
        gate(bundles["good2"], bundles["good"], data, "--candidate-sha256", bundles["good"].sha256)
        == 2
    )
    assert "refusing to load" in capsys.readouterr().err
