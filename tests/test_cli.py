import pytest

from dermaudit.cli import build_parser, main


def test_invalid_data_root_fails_before_any_chapter(tmp_path, caplog):
    bad = tmp_path / "data"
    bad.mkdir()
    (bad / "HAM10000_metadata.csv").write_text(
        "lesion_id,image_id,dx,dx_type,age,sex,localization\nHAM_1,ISIC_1,melanoma,histo,50,male,back\n")
    out = tmp_path / "output"

    status = main(["report", "--data-root", str(bad), "--output-dir", str(out), "--no-render"])

    assert status == 1
    assert "'melanoma'" in caplog.text
    assert "line 2" in caplog.text
    assert not (out / "notebooks").exists()


def test_unknown_params_key_fails_with_valid_keys(tmp_path, caplog):
    params = tmp_path / "p.yaml"
    params.write_text("epoch: 3\n")

    status = main(["report", "--params", str(params), "--output-dir", str(tmp_path / "out"), "--no-render"])

    assert status == 1
    assert "unknown parameter(s) 'epoch'" in caplog.text
    assert "epochs" in caplog.text


def test_chapter_name_must_be_known():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["chapter", "slices"])
