"""The labelled-data store without a server: the writer's rotation (by rows, by age, on
close), its bounds when the sink fails, retention, the dtypes of a DataFrame model and of a
regressor read back through ``read_window``, and the ``labelled-data`` command."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from user_models import churn_frame, fitted_churn, fitted_diabetes

from modeldeploy.server.bundling import bundle_model
from modeldeploy.server.card import ModelCard
from modeldeploy.server.contract import retrain as r
from modeldeploy.server.labelled import LabelledDataError, S3Settings, read_window
from modeldeploy.server.labelled.format import Labelled, Layout, first_ms_of
from modeldeploy.server.labelled.sinks import FolderSink
from modeldeploy.server.labelled.writer import DAY, LabelledWriter, Limits

FEATURES = ["plan", "region", "monthly fee", "has_support", "tickets"]
DAY_MS = int(DAY * 1000)


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, ModelCard]:
    model, frame = fitted_churn()
    card, _ = bundle_model(
        model, frame, "churned", name="churn", version="3", out=tmp_path_factory.mktemp("b") / "c"
    )
    return model, frame, card


def churn_rows(frame: Any) -> list[list[Any]]:
    """Rows as the server keeps them: validated JSON values in the card's order."""
    return [
        [str(p), str(g), float(f), bool(s), int(t)]
        for p, g, f, s, t in frame[FEATURES].itertuples(index=False)
    ]


def chunks_of(frame: Any, model: Any, per: int, at: float, prefix: str = "req") -> list[Labelled]:
    """``frame``'s rows labelled with its own target, ``per`` rows per request."""
    predictions = model.predict(frame[FEATURES]).tolist()
    labels = frame["churned"].tolist()
    rows = churn_rows(frame)
    return [
        Labelled(
            f"{prefix}{i // per}",
            rows[i : i + per],
            predictions[i : i + per],
            labels[i : i + per],
            at - 0.5,
            at,
        )
        for i in range(0, len(rows), per)
    ]


def writer_for(
    card: ModelCard, model: Any, root: Path, pod: str = "pod-a", **kw: Any
) -> LabelledWriter:
    return LabelledWriter(
        FolderSink(root),
        Layout.from_card(card, model.classes_.tolist()),
        model=card.name,
        version=card.version,
        role="stable",
        pod=pod,
        **kw,
    )


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if not p.name.startswith("."))


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def running() -> Iterator[list[LabelledWriter]]:
    started: list[LabelledWriter] = []
    yield started
    for w in started:
        w.close(timeout=5)


def test_a_file_is_written_when_rows_per_file_rows_wait_and_the_rest_on_close(
    churn: tuple[Any, Any, ModelCard], tmp_path: Path, running: list[LabelledWriter]
) -> None:
    model, _, card = churn
    frame = churn_frame(5010, seed=7)
    writer = writer_for(card, model, tmp_path)  # the defaults: 5000 rows, 60 s
    running.append(writer)
    writer.start()
    chunks = chunks_of(frame, model, per=10, at=time.time())
    for chunk in chunks[:500]:
        writer.add(chunk)
    assert wait_for(lambda: len(files(tmp_path)) == 1, 20), "no file at 5000 rows"
    assert len(pd.read_parquet(files(tmp_path)[0])) == 5000
    writer.add(chunks[500])
    time.sleep(0.5)
    assert len(files(tmp_path)) == 1, "10 rows are not a file before 60 s"
    writer.close()
    written = files(tmp_path)
    assert len(written) == 2
    assert [len(pd.read_parquet(p)) for p in written] == [5000, 10]
    assert writer.pending_rows == 0
    assert writer.metrics.rows._value.get() == 5010
    assert writer.metrics.files._value.get() == 2
    layout = written[0].relative_to(tmp_path).parts
    assert layout[0] == "churn" and layout[1] == datetime.now(UTC).strftime("%Y-%m-%d")
    assert layout[2].startswith("pod-a-") and first_ms_of(layout[2]) is not None


def test_a_file_is_written_when_the_oldest_row_is_max_age_old(
    churn: tuple[Any, Any, ModelCard], tmp_path: Path, running: list[LabelledWriter]
) -> None:
    model, _, card = churn
    writer = writer_for(card, model, tmp_path, limits=Limits(max_age=0.5))
    running.append(writer)
    writer.start()
    writer.add(chunks_of(churn_frame(3, seed=1), model, per=3, at=time.time())[0])
    started = time.monotonic()
    assert wait_for(lambda: len(files(tmp_path)) == 1, 5)
    assert time.monotonic() - started < 3
    assert len(pd.read_parquet(files(tmp_path)[0])) == 3


def test_a_failing_sink_keeps_the_newest_rows_within_the_bound_and_logs_once_per_change(
    churn: tuple[Any, Any, ModelCard], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, _, card = churn
    root = tmp_path / "store"
    root.write_text("a file where the folder should be")  # every write fails for real
    limits = Limits(rows_per_file=100, max_pending=300)
    writer = writer_for(card, model, root, limits=limits)
    frame = churn_frame(500, seed=3)
    frame.loc[:, "plan"] = "enterprise"
    frame.loc[:, "monthly fee"] = 123.456
    caplog.set_level(logging.INFO, logger="modeldeploy.server.labelled")
    for chunk in chunks_of(frame, model, per=100, at=time.time()):
        writer.add(chunk)
    assert writer.pending_rows == 300
    assert writer.metrics.dropped._value.get() == 200
    assert writer.rotate() == 0
    assert writer.rotate() == 0
    assert writer.metrics.failures._value.get() == 2
    failures = [m for m in caplog.messages if "cannot write" in m]
    assert len(failures) == 1, caplog.messages
    assert writer.pending_rows == 300
    root.unlink()
    assert writer.rotate() == 3
    assert any("works again" in m for m in caplog.messages)
    back = read_window(str(root))
    assert sorted(set(back[r.COLUMN_REQUEST_ID])) == ["req2", "req3", "req4"]
    assert writer.metrics.rows._value.get() == 300
    text = "\n".join(caplog.messages)
    assert "enterprise" not in text and "123.456" not in text, "rows never go into logs"


def test_retention_deletes_the_models_expired_files_of_any_pod(
    churn: tuple[Any, Any, ModelCard], tmp_path: Path
) -> None:
    model, _, card = churn
    now = time.time()
    old = writer_for(card, model, tmp_path, pod="gone-pod", limits=Limits(retention=30 * DAY))
    for age_days in (9, 8, 6):
        chunk = chunks_of(churn_frame(4, seed=age_days), model, 4, now - age_days * DAY)[0]
        old.add(chunk)
    assert old.rotate() == 3
    other = tmp_path / "other-model" / "2000-01-01"
    other.mkdir(parents=True)
    (other / "x-946684800000-000000.parquet").write_bytes(b"another model's file")
    assert len(files(tmp_path)) == 4
    fresh = writer_for(card, model, tmp_path, pod="new-pod")  # default retention: 7 days
    fresh.add(chunks_of(churn_frame(2, seed=0), model, 2, now)[0])
    assert fresh.rotate() == 1
    kept = [p.relative_to(tmp_path).as_posix() for p in files(tmp_path)]
    assert len(kept) == 3, kept
    assert any(k.startswith("other-model/") for k in kept)
    ages = sorted((now * 1000 - first_ms_of(k)) / DAY_MS for k in kept if k.startswith("churn"))
    assert ages[0] < 1 and 5.9 < ages[1] < 6.1, ages


def test_a_dataframe_model_round_trips_with_its_dtypes_and_string_classes(
    churn: tuple[Any, Any, ModelCard], tmp_path: Path
) -> None:
    model, _, card = churn
    frame = churn_frame(40, seed=11)
    writer = writer_for(card, model, tmp_path)
    at = time.time()
    for chunk in chunks_of(frame, model, per=7, at=at):
        writer.add(chunk)
    writer.close()
    back = read_window(str(tmp_path), model="churn")
    assert list(back.columns) == [*r.RESERVED_COLUMNS, *FEATURES]
    assert len(back) == 40
    dtypes = {k: str(v) for k, v in back.dtypes.items()}
    assert dtypes["plan"] == dtypes["region"] == "str"
    assert dtypes["monthly fee"] == "float64"
    assert dtypes["has_support"] == "bool"
    assert dtypes["tickets"] == "int64"
    assert dtypes[r.COLUMN_PREDICTION] == dtypes[r.COLUMN_LABEL] == "str"
    assert dtypes[r.COLUMN_TIME] == dtypes[r.COLUMN_PREDICTED_AT] == "datetime64[ms, UTC]"
    pd.testing.assert_frame_equal(
        back[FEATURES], frame[FEATURES].astype({"plan": "str", "region": "str"})
    )
    assert back[r.COLUMN_LABEL].tolist() == frame["churned"].tolist()
    assert back[r.COLUMN_PREDICTION].tolist() == model.predict(frame[FEATURES]).tolist()
    assert set(back[r.COLUMN_VERSION]) == {"3"} and set(back[r.COLUMN_ROLE]) == {"stable"}
    assert back[r.COLUMN_REQUEST_ID].tolist()[:8] == ["req0"] * 7 + ["req1"]
    first = back[r.COLUMN_TIME].iloc[0]
    assert abs(first.timestamp() - at) < 0.001
    assert abs((first - back[r.COLUMN_PREDICTED_AT].iloc[0]).total_seconds() - 0.5) < 0.002
    # The rows are what the model was given: it predicts the same from the stored features.
    assert model.predict(back[FEATURES]).tolist() == back[r.COLUMN_PREDICTION].tolist()


def test_a_regressor_on_an_array_round_trips_as_floats(tmp_path: Path) -> None:
    reg, x, y = fitted_diabetes()
    card, _ = bundle_model(reg, x, y, name="diabetes", version="1", out=tmp_path / "bundle")
    layout = Layout.from_card(card, None)
    assert layout.target == "float64" and set(layout.dtypes) == {"float64"}
    writer = LabelledWriter(
        FolderSink(tmp_path / "store"),
        layout,
        model="diabetes",
        version="1",
        role="candidate",
        pod="p",
    )
    predictions = reg.predict(x[:30])
    for i in range(0, 30, 10):  # numeric requests keep their float arrays
        writer.add(
            Labelled(
                f"r{i}",
                x[i : i + 10],
                predictions[i : i + 10].tolist(),
                y[i : i + 10].astype(float).tolist(),
                time.time(),
                time.time(),
            )
        )
    writer.close()
    back = read_window(str(tmp_path / "store"))
    assert list(back.columns[7:]) == list(card.feature_names)
    np.testing.assert_array_equal(back[list(card.feature_names)].to_numpy(), x[:30])
    assert back[r.COLUMN_LABEL].dtype == np.float64
    np.testing.assert_array_equal(back[r.COLUMN_LABEL].to_numpy(), y[:30])
    np.testing.assert_allclose(back[r.COLUMN_PREDICTION].to_numpy(), predictions)
    assert set(back[r.COLUMN_ROLE]) == {"candidate"}


def test_the_window_reads_only_its_days_and_rows_and_says_what_is_wrong(
    churn: tuple[Any, Any, ModelCard], tmp_path: Path
) -> None:
    model, _, card = churn
    now = datetime.now(UTC).replace(microsecond=0)
    writer = writer_for(card, model, tmp_path)
    for days in (3, 2, 1, 0):
        at = (now - timedelta(days=days)).timestamp()
        writer.add(chunks_of(churn_frame(5, seed=days), model, 5, at, f"d{days}-")[0])
    writer.close()
    everything = read_window(str(tmp_path))
    assert len(everything) == 20
    assert everything[r.COLUMN_TIME].is_monotonic_increasing
    two = read_window(str(tmp_path), since=now - timedelta(days=2), until=now - timedelta(days=1))
    assert set(two[r.COLUMN_REQUEST_ID]) == {"d2-0"}
    naive = read_window(str(tmp_path), since=(now - timedelta(hours=1)).replace(tzinfo=None))
    assert set(naive[r.COLUMN_REQUEST_ID]) == {"d0-0"}
    # A corrupt file outside the window's days is never read; one inside it is an error.
    old_day = (now - timedelta(days=3)).strftime("%Y-%m-%d")
    next(iter((tmp_path / "churn" / old_day).iterdir())).write_bytes(b"not parquet")
    assert len(read_window(str(tmp_path), since=now - timedelta(days=2))) == 15
    with pytest.raises(LabelledDataError, match="is not a readable Parquet file"):
        read_window(str(tmp_path))
    empty = read_window(str(tmp_path), model="no-such-model")
    assert len(empty) == 0 and list(empty.columns) == list(r.RESERVED_COLUMNS)
    assert str(empty[r.COLUMN_TIME].dtype) == "datetime64[ms, UTC]"
    with pytest.raises(LabelledDataError, match="no such folder"):
        read_window(str(tmp_path / "missing"))
    with pytest.raises(LabelledDataError, match="not s3://"):
        read_window(str(tmp_path), s3=S3Settings("http://127.0.0.1:9"))


def test_the_command_summarises_and_exports_the_window(
    churn: tuple[Any, Any, ModelCard], tmp_path: Path
) -> None:
    model, _, card = churn
    store = tmp_path / "store"
    writer = writer_for(card, model, store)
    for chunk in chunks_of(churn_frame(12, seed=5), model, per=4, at=time.time()):
        writer.add(chunk)
    writer.close()
    out = tmp_path / "rows.csv"
    cmd = [sys.executable, "-m", "modeldeploy", "labelled-data", str(store), "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "rows: 12" in lines and "files: 1" in lines
    assert "3  stable  12" in lines
    assert any(line.startswith("time: ") for line in lines)
    assert len(pd.read_csv(out)) == 12
    bad = subprocess.run(
        [*cmd[:4], str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1 and "no such folder" in bad.stderr


def test_a_card_may_not_name_a_feature_like_a_reserved_column(tmp_path: Path) -> None:
    model, frame = fitted_churn()
    renamed = frame.rename(columns={"has_support": "_md_support"})
    model.fit(renamed.drop(columns="churned"), renamed["churned"])
    with pytest.raises(ValueError, match="'_md_support': names starting with '_md_' are reserved"):
        bundle_model(model, renamed, "churned", name="c", version="1", out=tmp_path / "b")


def test_rows_that_cannot_be_converted_are_dropped_alone_and_the_rest_is_written(
    churn: tuple[Any, Any, ModelCard], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, _, card = churn
    writer = writer_for(card, model, tmp_path, limits=Limits(rows_per_file=3, max_pending=30))
    good = chunks_of(churn_frame(6, seed=2), model, per=3, at=time.time())
    broken = good[0]._replace(rows=[["pro", "eu", 1.5]] * 3)  # a row short of two values
    for chunk in (good[0], broken, good[1]):
        writer.add(chunk)
    assert writer.rotate() == 2
    assert len(read_window(str(tmp_path))) == 6
    assert writer.metrics.dropped._value.get() == 3
    assert writer.metrics.failures._value.get() == 1
    assert any("dropping 3 rows (ValueError)" in m for m in caplog.messages)
    assert writer.pending_rows == 0
