"""Every bad input of the data layout: one clear line naming the file and the fix, exit 1,
nothing written."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import write_class_folders
from socket_edge.cli import main
from socket_edge.data.folders import check_ti_disjoint, ti_pairs
from socket_edge.errors import DataError


def train(data: Path, out: Path, modality: str = "rgb") -> list[str]:
    return ["train-source", "--data", str(data), "--modality", modality, "--arch", "mobilenet_v3_small",
            "--weights", "none", "--out", str(out), "--epochs", "1", "--img-size", "32", "-q"]


def run_failing(argv: list[str], capsys: pytest.CaptureFixture, out: Path) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith("socket-edge: error: ")
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))
    return err


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    err = run_failing(train(tmp_path / "data", tmp_path / "m.pt"), capsys, tmp_path / "m.pt")
    assert "is empty; expected class folders" in err


def test_class_folder_without_images(tmp_path, capsys):
    data = write_class_folders(tmp_path / "data", "rgb", per_class=2)
    (data / "zebra").mkdir()
    (data / "zebra" / "notes.txt").write_text("no images here")
    err = run_failing(train(data, tmp_path / "m.pt"), capsys, tmp_path / "m.pt")
    assert "zebra has no images" in err and "add images or remove the folder" in err


def test_corrupt_and_empty_image(tmp_path, capsys):
    data = write_class_folders(tmp_path / "data", "rgb", per_class=2)
    (data / "blob" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    err = run_failing(train(data, tmp_path / "m.pt"), capsys, tmp_path / "m.pt")
    assert "blob/001.png cannot be decoded" in err
    (data / "blob" / "001.png").write_bytes(b"")
    err = run_failing(train(data, tmp_path / "m.pt"), capsys, tmp_path / "m.pt")
    assert "blob/001.png is empty (0 bytes)" in err


def test_eight_bit_depth(tmp_path, capsys):
    data = write_class_folders(tmp_path / "data", "depth", per_class=2)
    cv2.imwrite(str(data / "ring" / "000.png"), np.full((32, 32), 90, np.uint8))
    err = run_failing(train(data, tmp_path / "m.pt", "depth"), capsys, tmp_path / "m.pt")
    assert "ring/000.png is 8-bit; depth must be 16-bit (millimetres)" in err and "--depth-scale" in err


def test_rgb_file_where_one_channel_is_expected(tmp_path, capsys):
    data = write_class_folders(tmp_path / "data", "ir", per_class=2)
    cv2.imwrite(str(data / "bars" / "001.png"), np.zeros((32, 32, 3), np.uint8))
    err = run_failing(train(data, tmp_path / "m.pt", "ir"), capsys, tmp_path / "m.pt")
    assert "bars/001.png has 3 channels; ir needs single-channel images" in err


def make_ti(tmp_path: Path) -> tuple[Path, Path]:
    src = write_class_folders(tmp_path / "ti_rgb", "rgb", per_class=2, classes=("street", "water"))
    tgt = write_class_folders(tmp_path / "ti_depth", "depth", per_class=2, classes=("street", "water"))
    return src, tgt


def test_ti_pairs_match_by_relative_path_across_extensions(tmp_path):
    src, tgt = make_ti(tmp_path)
    (tgt / "water" / "001.png").rename(tgt / "water" / "001.tif")
    pairs = ti_pairs(src, tgt)
    assert len(pairs) == 4 and pairs.source.class_names == ("street", "water")
    for a, b in zip(pairs.source.files, pairs.target.files):
        assert a.relative_to(src).with_suffix("") == b.relative_to(tgt).with_suffix("")


def test_ti_file_without_partner(tmp_path):
    src, tgt = make_ti(tmp_path)
    (tgt / "water" / "001.png").unlink()
    with pytest.raises(DataError, match=r"water/001.png has no partner under .*ti_depth"):
        ti_pairs(src, tgt)
    (src / "water" / "001.png").unlink()
    (tgt / "street" / "009.png").write_bytes((tgt / "street" / "000.png").read_bytes())
    with pytest.raises(DataError, match=r"TI target file .*street/009.png has no partner"):
        ti_pairs(src, tgt)


def test_ti_classes_overlapping_the_task(tmp_path):
    src, tgt = make_ti(tmp_path)
    with pytest.raises(DataError, match="contain task classes water; TI data must be of other classes"):
        check_ti_disjoint(ti_pairs(src, tgt), ["bedroom", "water"])
    check_ti_disjoint(ti_pairs(src, tgt), ["bedroom", "office"])


def test_missing_folder_and_usage_error(tmp_path, capsys):
    err = run_failing(train(tmp_path / "nowhere", tmp_path / "m.pt"), capsys, tmp_path / "m.pt")
    assert "nowhere does not exist" in err
    with pytest.raises(SystemExit) as exc:
        main(["train-source", "--data", str(tmp_path), "--out", str(tmp_path / "m.pt"), "--epochs", "0"])
    assert exc.value.code == 2


def test_classes_option_picks_folders_and_names_missing_ones(tmp_path, capsys):
    from socket_edge.data.folders import class_folders

    data = write_class_folders(tmp_path / "data", "rgb", per_class=2)
    assert class_folders(data, classes=["ring", "bars"]).class_names == ("bars", "ring")
    err = run_failing(train(data, tmp_path / "m.pt") + ["--classes", "ring,zebra"], capsys, tmp_path / "m.pt")
    assert "has no class folder zebra (found: bars, blob, ring)" in err
