from pathlib import Path

import numpy as np
import pytest

from wavelet_pipeline.data import BUILTIN_SERIES, DataError, load_builtin, load_csv


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text(text)
    return path


GOOD = """Date,Open,High,Low,Close,Volume
2020-01-02,100,101,99,100.5,1000
2020-01-03,100.5,102,100,101.0,1200
2020-01-06,101,103,100.5,102.5,900
"""


@pytest.mark.parametrize("name", BUILTIN_SERIES)
def test_builtin_series_are_clean_and_real(name: str) -> None:
    series = load_builtin(name)
    close = series.close
    assert close.index.is_monotonic_increasing and close.index.is_unique
    assert (close > 0).all() and np.isfinite(close).all()
    assert close.size > 1000
    assert series.source.split()[0].startswith(("arch.data", "pmdarima"))


def test_sp500_covers_the_documented_range() -> None:
    series = load_builtin("sp500")
    assert (series.start, series.end, series.close.size) == ("1999-01-04", "2018-12-31", 5031)


def test_missing_values_are_dropped_and_reported_not_filled() -> None:
    wti = load_builtin("wti")
    assert len(wti.dropped_dates) > 0
    assert wti.describe()["missing_policy_dropped_rows"] == len(wti.dropped_dates)
    dropped = set(wti.dropped_dates)
    assert not any(f"{d:%Y-%m-%d}" in dropped for d in wti.close.index)


def test_good_csv_with_ohlcv(tmp_path: Path) -> None:
    series = load_csv(write(tmp_path, GOOD))
    assert series.close.tolist() == [100.5, 101.0, 102.5]
    assert series.source == "csv:prices.csv"


def test_column_names_are_matched_without_case_or_spaces(tmp_path: Path) -> None:
    series = load_csv(write(tmp_path, " date , CLOSE \n2020-01-02, 1.5\n2020-01-03, 1.6\n"))
    assert series.close.tolist() == [1.5, 1.6]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Date,Open\n2020-01-02,1\n", "missing required column 'Close'"),
        ("Day,Close\n2020-01-02,1\n", "missing required column 'Date'"),
        ("Date,Close\n2020-01-02,1\n2020-13-45,2\n", "line 3, column Date: cannot parse '2020-13-45'"),
        ("Date,Close\n2020-01-03,1\n2020-01-02,2\n", "line 3, column Date: 2020-01-02 comes after 2020-01-03"),
        ("Date,Close\n2020-01-02,1\n2020-01-02,2\n", "line 3, column Date: duplicate date 2020-01-02 (also on line 2)"),
        ("Date,Close\n2020-01-02,1\n2020-01-03,0\n", "line 3, column Close: 0 is not positive"),
        ("Date,Close\n2020-01-02,1\n2020-01-03,-4\n", "line 3, column Close: -4 is not positive"),
        ("Date,Close\n2020-01-02,1\n2020-01-03,abc\n", "line 3, column Close: 'abc' is not a number"),
        ("Date,Close\n2020-01-02,1\n2020-01-03,inf\n", "line 3, column Close: 'inf' is not a finite number"),
        ("Date,Close,Volume\n2020-01-02,1,5\n2020-01-03,2,-1\n", "line 3, column Volume: -1 is negative"),
        ("Date,Close\n2020-01-02,1\n2020-03-02,2\n", "line 3, column Date: gap of 60 days after 2020-01-02"),
        ("Date,Close\n2020-01-02,1\n2020-01-03,\n2020-01-06,2\n", "line 3, column Close: value is missing (1 missing in all)"),
        ("Date,Close\n", "the table has no rows"),
        ("Date,Close\n2020-01-02,1\n", "fewer than two usable prices"),
    ],
)
def test_bad_csv_is_rejected_with_its_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError) as error:
        load_csv(write(tmp_path, text))
    assert message in str(error.value)


def test_missing_close_can_be_dropped_explicitly(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Close\n2020-01-02,1\n2020-01-03,NA\n2020-01-06,2\n2020-01-07,\n2020-01-08,3\n")
    series = load_csv(path, missing="drop")
    assert series.close.tolist() == [1.0, 2.0, 3.0]
    assert series.dropped_dates == ("2020-01-03", "2020-01-07")


def test_dropping_cannot_hide_a_gap(tmp_path: Path) -> None:
    rows = "".join(f"2020-01-{d:02d},\n" for d in range(3, 20))
    path = write(tmp_path, "Date,Close\n2020-01-02,1\n" + rows + "2020-01-20,2\n")
    with pytest.raises(DataError, match="gap of 18 days"):
        load_csv(path, missing="drop")


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00\x00garbage")
    with pytest.raises(DataError):
        load_csv(path)
