import csv

import pytest

from modeling.cli import main
from modeling.schema import COLUMNS
from modeling.synthetic import synthetic_table


def _write_csv(path, n_rows, with_target=True, drop=()):
    columns, target = synthetic_table(n_rows, seed=11)
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
            ["train", "--train", str(data), "--profile", "quick", "--folds", "2", "--out", str(out)]
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


def test_unknown_profile_is_refused():
    from modeling.params import load_params

    with pytest.raises(KeyError, match="no parameter profile 'turbo'"):
        load_params("turbo")
