import json
import os
import re
import stat

import pandas as pd
import pytest

from driftline.config import RetrainingConfig
from driftline.data.archive import ArchivedBatch, archive_batch, read_archive_index, select_retraining_batches
from driftline.data.loading import fingerprint_file, load_batch
from driftline.data.quarantine import quarantine_file
from driftline.data.storage import write_atomically
from driftline.errors import DataRejected


def test_csv_loads_typed_and_fingerprinted(cfg, demo_files):
    batch = load_batch(demo_files["stable"], cfg.dataset)
    assert batch.rows == 1000
    assert batch.fingerprint == fingerprint_file(demo_files["stable"])
    assert len(batch.fingerprint) == 64
    assert str(batch.frame["event_time"].dtype) == "datetime64[ns, UTC]"
    assert batch.frame["contract"].map(type).eq(str).all()


def test_numeric_looking_categories_and_ids_stay_text(cfg, tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text("customer_id,region,age\n007,1,40\n008,2,\n")
    frame = load_batch(path, cfg.dataset).frame
    assert frame["customer_id"].tolist() == ["007", "008"]
    assert frame["region"].tolist() == ["1", "2"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "file is empty"),
        (b"customer_id,age\n", "file has a header but no rows"),
        (b"customer_id;age;region\nC1;40;north\n", "looks ';'-delimited; set dataset.csv_delimiter"),
        (b"customer_id,region\nC1,nor\xffth\n", "not UTF-8 text: byte 0xff"),
        (b'a,b\n1,"unterminated\n', "not parseable as CSV"),
    ],
)
def test_unreadable_csv_is_rejected_with_reason(cfg, tmp_path, content, reason):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataRejected, match=reason):
        load_batch(path, cfg.dataset)


def test_corrupt_parquet_and_unknown_types_are_rejected(cfg, tmp_path, demo_files):
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(demo_files["reference"].read_bytes()[:500])
    with pytest.raises(DataRejected, match="not a readable Parquet file"):
        load_batch(truncated, cfg.dataset)
    odd = tmp_path / "data.xlsx"
    odd.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataRejected, match="unsupported file type '.xlsx'"):
        load_batch(odd, cfg.dataset)
    with pytest.raises(DataRejected, match="file does not exist"):
        load_batch(tmp_path / "missing.csv", cfg.dataset)


def test_archive_is_content_addressed_read_only_and_idempotent(cfg, demo_files, tmp_path):
    batch = load_batch(demo_files["stable"], cfg.dataset)
    archive_dir = tmp_path / "archive"
    first = archive_batch(batch, archive_dir, cfg.dataset)
    again = archive_batch(batch, archive_dir, cfg.dataset)
    assert first == again
    assert first.path == f"{batch.fingerprint}.csv"  # relative: the workspace can move
    stored = first.location(archive_dir)
    assert not os.stat(stored).st_mode & stat.S_IWUSR
    assert fingerprint_file(stored) == batch.fingerprint
    assert len(read_archive_index(archive_dir)) == 1
    assert first.event_time_max.startswith("2026-03")


def _entry(name: str, newest: str, labeled: bool = True) -> ArchivedBatch:
    return ArchivedBatch(name, f"/a/{name}", name, 10, "2026-01-01T00:00:00+00:00", labeled, newest)


def test_retraining_window_selects_labeled_batches():
    archive = [
        _entry("a", "2026-01-01T00:00:00+00:00"),
        _entry("b", "2026-01-20T00:00:00+00:00"),
        _entry("unlabeled", "2026-01-25T00:00:00+00:00", labeled=False),
        _entry("c", "2026-01-28T00:00:00+00:00"),
    ]
    names = lambda entries: [e.fingerprint for e in entries]  # noqa: E731
    assert names(select_retraining_batches(archive, RetrainingConfig())) == ["a", "b", "c"]
    assert names(select_retraining_batches(archive, RetrainingConfig(window="last_batches", size=2))) == ["b", "c"]
    assert names(select_retraining_batches(archive, RetrainingConfig(window="last_days", size=10))) == ["b", "c"]


def test_quarantine_moves_the_file_and_writes_the_reasons(tmp_path):
    source = tmp_path / "landing" / "bad.csv"
    source.parent.mkdir()
    source.write_text("x\n1\n")
    destination = quarantine_file(source, tmp_path / "quarantine", ["column 'age' is missing"], {"k": 1})
    assert not source.exists()
    assert (destination / "bad.csv").read_text() == "x\n1\n"
    summary = json.loads((destination / "validation.json").read_text())
    assert summary["reasons"] == ["column 'age' is missing"]


def test_atomic_write_keeps_the_previous_file_when_writing_fails(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("previous")

    def crash(temp):
        temp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, crash)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_numbers_in_any_storage_are_numbers_and_integer_codes_stay_integers(cfg, tmp_path):
    from decimal import Decimal

    frame = pd.DataFrame(
        {
            "support_calls": pd.array([1, None, 3], dtype="Int64"),
            "monthly_charges": [Decimal("58.49"), Decimal("73.77"), None],
            "region": [1.0, None, 3.0],  # integer codes that picked up a NaN
        }
    )
    path = tmp_path / "typed.parquet"
    frame.to_parquet(path, index=False)
    loaded = load_batch(path, cfg.dataset).frame
    assert loaded["support_calls"].dtype == "float64" and loaded["monthly_charges"].tolist()[:2] == [58.49, 73.77]
    assert loaded["region"].tolist()[0] == "1" and loaded["region"].tolist()[2] == "3"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"customer_id,age,age\nC1,40,41\n", "column names appear more than once: ['age']"),
        (b"customer_id,event_time\nC1,1767225600\n", "column 'event_time' holds numbers, not timestamps"),
    ],
)
def test_ambiguous_files_are_rejected_not_guessed(cfg, tmp_path, content, reason):
    path = tmp_path / "ambiguous.csv"
    path.write_bytes(content)
    with pytest.raises(DataRejected, match=re.escape(reason)):
        load_batch(path, cfg.dataset)
