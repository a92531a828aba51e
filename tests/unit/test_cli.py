import csv
import json

import pytest

from modeling.schema import COLUMNS
from modeling.training.cli import main
from modeling.training.synthetic import synthetic_table


def _write_csv(path, n_rows, with_target=True, drop=(), positives=None):
    columns, target = synthetic_table(n_rows, seed=11)
    if positives is not None:
        target = [int(i < positives) for i in range(n_rows)]
    header = [c for c in COLUMNS if c not in drop] + (["y"] if with_target else [])
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        for i in range(n_rows):
            row = [columns[c][i] for c in COLUMNS if c not in drop]
            writer.writerow(row + ([int(target[i])] if with_target else []))
    return path


def test_predict_scores_a_csv_file(quick_bundle, tmp_path, capsys):
    rows = _write_csv(tmp_path / "rows.csv", 40, with_target=False)
    out = tmp_path / "scored.csv"
    assert (
        main(["predict", "--bundle", str(quick_bundle), "--input", str(rows), "--output", str(out)])
        == 0
    )
    scored = list(csv.DictReader(out.open()))
    assert len(scored) == 40
    assert {row["class"] for row in scored} <= {"0", "1"}
    assert all(0 < float(row["probability"]) < 1 for row in scored)
    assert "DEMO MODEL" in capsys.readouterr().err


def test_train_from_a_csv_file_is_not_a_demo(tmp_path, capsys):
    data = _write_csv(tmp_path / "train.csv", 600)
    out = tmp_path / "bundle"
    assert (
        main(
            ["train", "--train", str(data), "--preset", "quick", "--folds", "2", "--out", str(out)]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "DEMO" not in err
    assert "lightgbm: fold 2/2" in err
    assert "CV AUC stack" in err
    assert (out / "manifest.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--drop"], "lacks 2 of the columns x0..x99: x3, x7"),
        (["--no-target"], "no target column 'y'"),
    ],
)
def test_train_explains_a_bad_file(tmp_path, capsys, args, message):
    drop = ("x3", "x7") if "--drop" in args else ()
    data = _write_csv(tmp_path / "bad.csv", 20, with_target="--no-target" not in args, drop=drop)
    assert main(["train", "--train", str(data), "--out", str(tmp_path / "b")]) == 2
    assert message in capsys.readouterr().err


def test_train_explains_a_bad_target(tmp_path, capsys):
    data = tmp_path / "bad.csv"
    data.write_text(",".join([*COLUMNS, "y"]) + "\n" + ",".join(["1"] * 100 + ["yes"]) + "\n")
    assert main(["train", "--train", str(data), "--out", str(tmp_path / "b")]) == 2
    assert "must hold only 0 and 1" in capsys.readouterr().err
    data.write_text(",".join([*COLUMNS, "y"]) + "\n" + ",".join(["1"] * 100 + ["1"]) + "\n")
    assert main(["train", "--train", str(data), "--out", str(tmp_path / "b")]) == 2
    assert "single class" in capsys.readouterr().err


def test_unreadable_file_and_missing_bundle_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "--train", str(tmp_path / "none.csv"), "--out", str(tmp_path / "b")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["predict", "--bundle", str(tmp_path / "nb"), "--input", "x", "--output", "y"]) == 2
    assert "no model bundle" in capsys.readouterr().err


def test_unknown_preset_is_refused():
    from modeling.training.params import load_params

    with pytest.raises(KeyError, match="no parameter preset 'turbo'"):
        load_params("turbo")


@pytest.mark.parametrize("preset", ["quick", "default"])
def test_training_refuses_too_few_rows_in_one_line(tmp_path, capsys, preset):
    # issue #12 item 9: 50 rows with 7 positives gave a traceback (n_components = 8,
    # n_samples = 6) with the default preset, and a bundle of CV AUC 0.66 with quick.
    data = _write_csv(tmp_path / "small.csv", 50, positives=7)
    out = tmp_path / "bundle"
    code = main(["train", "--train", str(data), "--preset", preset, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: too few rows to learn from: 7 rows of class y=1" in err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(("encoding", "name"), [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_training_names_an_encoding_it_cannot_read(tmp_path, capsys, encoding, name):
    data = _write_csv(tmp_path / "rows.csv", 20)
    data.write_bytes(data.read_text().encode(encoding))  # with its byte-order mark
    assert main(["train", "--train", str(data), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {data} is {name} text; save it as UTF-8 CSV and try again"


def test_training_names_a_file_that_is_not_utf8(tmp_path, capsys):
    data = _write_csv(tmp_path / "rows.csv", 20)
    data.write_bytes(data.read_text().encode("utf-8").replace(b"monday", b"m\xf6nday", 1))
    assert main(["train", "--train", str(data), "--out", str(tmp_path / "b")]) == 2
    assert "is not UTF-8 text (byte 0xf6 at offset" in capsys.readouterr().err


def test_training_warns_loudly_when_the_interval_is_too_wide_to_trust(tmp_path, capsys):
    data = _write_csv(tmp_path / "few.csv", 200)
    out = tmp_path / "bundle"
    assert main(["train", "--train", str(data), "--preset", "quick", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "*** WARNING: the stack's cross-validated AUC" in err
    assert "too few rows to trust" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["warnings"]) == 1
    assert "wider than 0.05" in manifest["warnings"][0]
