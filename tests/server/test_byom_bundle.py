"""Bundling users' own models: schema, card, CLI (CSV and Parquet), the pin, the gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import yaml
from user_models import fitted_churn, fitted_diabetes, fitted_iris

from modeldeploy.cli import main
from modeldeploy.server import bundle as b
from modeldeploy.server.bundling import SchemaError, bundle_model
from modeldeploy.server.contract import CARD_FILE
from modeldeploy.server.frame import Encoder

CARD_YAML = {
    "intendedUse": "Rank accounts by the risk of churning next month.",
    "outOfScope": ["Pricing decisions."],
    "ethicalConsiderations": ["Plan correlates with company size."],
    "caveats": ["Synthetic data."],
    "directionalChecks": [{"feature": "tickets", "direction": "increasing", "tolerance": 0.2}],
    "allowUnseen": ["region"],
    "features": {"monthly fee": {"description": "EUR per month", "minimum": 0}},
}


def test_schema_dtypes_classes_and_card_from_a_dataframe_pipeline(tmp_path: Path) -> None:
    model, frame = fitted_churn()
    frame["signup"] = np.datetime64("2026-01-01") + np.arange(len(frame)).astype("timedelta64[h]")
    card, digest = bundle_model(
        model,
        frame,
        "churned",
        name="churn",
        version="1",
        out=tmp_path / "churn",
        test=fitted_churn(seed=1)[1],
        card=CARD_YAML,
        subgroup="plan",
        time_column="signup",
    )
    assert digest == b.bundle_sha256(tmp_path / "churn")
    kinds = {f.name: (f.kind, f.dtype, f.categories, f.allow_unseen) for f in card.features}
    assert kinds["plan"][0:1] == ("categorical",) and kinds["plan"][2] == (
        "enterprise",
        "free",
        "pro",
    )
    assert kinds["plan"][3] is False and kinds["region"][3] is True
    assert kinds["monthly fee"][:2] == ("numeric", "float64")
    assert kinds["has_support"][:3] == ("boolean", "bool", (False, True))
    assert kinds["tickets"][:2] == ("integer", "int64")
    assert [f.name for f in card.features] == list(model.feature_names_in_)
    assert card.input_format == "dataframe"
    assert card.output.classes == ("no", "yes") and card.output.positive_class == "yes"
    assert card.evaluation["data"].startswith("test data (1500 rows)")
    assert set(card.evaluation["subgroups"]) == {"enterprise", "free", "pro"}
    assert card.training_data["time_range"][0].startswith("2026-01-01")
    assert card.training_data["rows"] == 1500
    assert card.features[2].description == "EUR per month" and card.features[2].minimum == 0
    assert card.ethical_considerations == ("Plan correlates with company size.",)
    assert 0.6 < card.metrics["roc_auc"] < 1.0
    # The card's profile is the reference's: category shares per plan.
    plan = card.reference_for("plan")
    shares = frame["plan"].value_counts(normalize=True)
    assert plan.fractions == pytest.approx([shares[p] for p in ("enterprise", "free", "pro")])
    # What the server builds is what the pipeline was fitted on.
    batch = Encoder(card.features, card.input_format).from_frame(frame.head(50))
    assert list(batch.model_input.columns) == list(model.feature_names_in_)
    assert (batch.model_input.dtypes == frame[list(model.feature_names_in_)].dtypes).all()
    np.testing.assert_array_equal(
        model.predict_proba(batch.model_input),
        model.predict_proba(frame.drop(columns=["churned", "signup"]).head(50)),
    )


def test_multiclass_string_labels_names_with_spaces_and_an_array_regressor(
    tmp_path: Path,
) -> None:
    model, frame = fitted_iris()
    card, _ = bundle_model(model, frame, "species", name="iris", version="1", out=tmp_path / "i")
    assert card.output.classes == ("setosa", "versicolor", "virginica")
    assert card.feature_names[0] == "sepal length (cm)"
    assert "held-out split" in card.evaluation["data"] and "f1_macro" in card.metrics
    assert sum(card.prediction_reference.class_fractions.values()) == pytest.approx(1.0)
    reg, x, y = fitted_diabetes()
    card, _ = bundle_model(reg, x, y, name="diabetes", version="1", out=tmp_path / "d")
    assert card.output.kind == "regression" and card.input_format == "array"
    assert card.feature_names == tuple(f"x{i}" for i in range(10))
    assert set(card.metrics) == {"mae", "rmse", "r2"}


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    model, frame = fitted_churn()
    with pytest.raises(SchemaError, match="no column 'plan'"):
        bundle_model(
            model, frame.drop(columns="plan"), "churned", name="c", version="1", out=tmp_path / "x"
        )
    holes = frame.copy()
    holes.loc[3, "region"] = None
    with pytest.raises(SchemaError, match="'region' has missing values"):
        bundle_model(model, holes, "churned", name="c", version="1", out=tmp_path / "x")
    with pytest.raises(SchemaError, match="'maybe' is not a class"):
        bundle_model(
            model,
            frame,
            "churned",
            name="c",
            version="1",
            out=tmp_path / "x",
            positive_class="maybe",
        )


def _write_inputs(tmp_path: Path, suffix: str) -> tuple[Path, Path, Path, Path]:
    model, frame = fitted_churn()
    test = fitted_churn(seed=2)[1]
    joblib.dump(model, tmp_path / "model.joblib")
    data, held = tmp_path / f"ref{suffix}", tmp_path / f"test{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(data)
        test.to_parquet(held)
    else:
        frame.to_csv(data, index=False)
        test.to_csv(held, index=False)
    card = tmp_path / "CARD.yaml"
    card.write_text(yaml.safe_dump(CARD_YAML))
    return tmp_path / "model.joblib", data, held, card


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_bundle_card_digest_and_gate(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model, data, held, card = _write_inputs(tmp_path, suffix)
    out = tmp_path / "churn-1.tar.gz"
    args = ["bundle", str(model), "--data", str(data), "--target", "churned", "--name", "churn"]
    args += ["--test", str(held), "--card", str(card), "--subgroup", "plan", str(out)]
    assert main([*args, "--version", "1"]) == 0
    digest = capsys.readouterr().out.strip()
    assert len(digest) == 64 and digest == b.bundle_sha256(out)
    assert main(["digest", str(out)]) == 0 and capsys.readouterr().out.strip() == digest
    assert main(["card", str(out)]) == 0
    text = capsys.readouterr().out
    for heading in (
        "## Model details",
        "## Intended use",
        "## Out-of-scope uses",
        "## Training data",
        "## Evaluation",
        "Per subgroup of `plan`",
        "## Ethical considerations",
        "## Caveats and recommendations",
        "## Input schema",
        "## Directional checks",
    ):
        assert heading in text, heading
    assert digest in text and "unseen values allowed" in text
    # The gate reads the same file type, string labels included, and needs the pins.
    gate = ["gate", str(out), "--current", str(out), "--data", str(held)]
    assert main(gate) == 2
    assert "--trust-card" in capsys.readouterr().err
    assert main([*gate, "--candidate-sha256", digest, "--current-sha256", digest]) == 0
    result = capsys.readouterr().out
    assert "verdict: PROMOTE" in result and "direction: tickets increasing" in result
    assert "no: " in result and "yes: " in result


def test_an_edited_card_is_refused(tmp_path: Path) -> None:
    """The pin covers the card: shifting its reference profile (which would hide drift) or
    its positive class is a digest mismatch, and the pickle is never opened."""
    model, frame = fitted_churn()
    folder = tmp_path / "churn"
    _, digest = bundle_model(model, frame, "churned", name="c", version="1", out=folder)
    assert b.load_bundle(folder, digest).card.name == "c"
    card = json.loads((folder / CARD_FILE).read_text())
    card["reference"][0]["fractions"] = [0.2, 0.4, 0.4]
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(b.IntegrityError, match="refusing to load"):
        b.load_bundle(folder, digest)
    # A pin of model.joblib alone (the old pin) is refused too, with a hint.
    with pytest.raises(b.IntegrityError, match="covers the card too"):
        b.load_bundle(folder, b.file_sha256(folder / "model.joblib"))


def test_a_card_written_before_these_fields_still_loads(
    tmp_path: Path, bundles: dict[str, Any]
) -> None:
    """Cards of the same schema version without input_format, evaluation, ethical
    considerations, dtype and allow_unseen load with the defaults (pinned by the new digest)."""
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(bundles["good"].path, folder)
    card = json.loads((folder / CARD_FILE).read_text())
    for key in ("input_format", "ethical_considerations", "evaluation"):
        del card[key]
    for feature in card["features"]:
        del feature["allow_unseen"], feature["dtype"]
    (folder / CARD_FILE).write_text(json.dumps(card))
    loaded = b.load_bundle(folder, b.bundle_sha256(folder))
    assert loaded.card.input_format == "array" and loaded.card.evaluation == {}
    assert not any(f.allow_unseen for f in loaded.card.features)


def test_gate_on_a_multiclass_model_with_string_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, frame = fitted_iris()
    _, digest = bundle_model(model, frame, "species", name="iris", version="1", out=tmp_path / "1")
    other = type(model)(n_estimators=5, max_depth=1, random_state=1)
    other.fit(frame.drop(columns="species"), frame["species"])
    _, digest2 = bundle_model(other, frame, "species", name="iris", version="2", out=tmp_path / "2")
    frame.to_csv(tmp_path / "labelled.csv", index=False)
    args = ["gate", str(tmp_path / "2"), "--current", str(tmp_path / "1")]
    args += ["--data", str(tmp_path / "labelled.csv"), "--min", "f1_macro=0.5"]
    code = main([*args, "--candidate-sha256", digest2, "--current-sha256", digest])
    out = capsys.readouterr().out
    assert "setosa: " in out and "minimum f1_macro" in out and "vs current: accuracy" in out
    # The weaker candidate loses to the current model on the same data.
    assert code == 1 and "verdict: REJECT" in out


def test_pandas_category_columns_keep_their_dtype_and_categories(tmp_path: Path) -> None:
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "colour": pd.Categorical(rng.choice(["red", "blue"], 300)),
            "level": pd.Categorical(rng.choice([1, 2, 3], 300), categories=[1, 2, 3, 4]),
            "v": rng.random(300),
        }
    )
    y = np.where(frame["colour"] == "red", 1, 0)
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["colour", "level"]), remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, y)
    card, _ = bundle_model(
        model,
        frame,
        y,
        name="c",
        version="1",
        out=tmp_path / "c",
        card={"allowUnseen": ["colour"]},
    )
    specs = {f.name: f for f in card.features}
    assert specs["colour"].categories == ("blue", "red") and specs["colour"].dtype == "category"
    assert specs["level"].categories == (1, 2, 3, 4)  # the dtype's own, 4 never observed
    assert card.reference_for("level").fractions[3] == 0.0
    batch = Encoder(card.features, "dataframe").build([[["red", 4, 0.5], ["green", 2, 0.1]]])
    assert batch.codes[:, 0].tolist() == [1.0, 2.0]  # green: the unseen bin
    assert batch.model_input["colour"].isna().tolist() == [False, True]
    assert isinstance(batch.model_input["level"].dtype, pd.CategoricalDtype)
    expected = frame.head(0).copy()
    expected.loc[0] = ["red", 4, 0.5]
    np.testing.assert_allclose(
        model.predict_proba(batch.model_input)[:1], model.predict_proba(expected)
    )
