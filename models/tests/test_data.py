import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wavelet_pipeline.data import (
    BUILTIN_SERIES,
    DataError,
    first_real_open,
    load_builtin,
    load_csv,
    stale_open_mask,
    validate_prices,
)


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


# ---- Open/High/Low ----------------------------------------------------------------------


def test_ohlc_are_kept_on_the_close_index(tmp_path: Path) -> None:
    series = load_csv(write(tmp_path, GOOD))
    assert series.fields == ["open", "high", "low", "close"]
    assert series.open.tolist() == [100.0, 100.5, 101.0] and series.high.tolist() == [101.0, 102.0, 103.0]
    assert series.low.tolist() == [99.0, 100.0, 100.5]
    assert all(s.index.equals(series.close.index) and s.dtype == np.float64 for s in (series.open, series.high, series.low))
    # Days 2 and 3 open at the previous close (stale).
    assert series.stale_open.tolist() == [False, True, True]
    described = series.describe()
    assert described["fields"] == ["open", "high", "low", "close"] and described["stale_open_share_by_year"] == {"2020": 0.6667}
    json.dumps(described)


def test_closes_only_have_no_ohlc(tmp_path: Path) -> None:
    series = load_csv(write(tmp_path, "Date,Close\n2020-01-02,1\n2020-01-03,2\n"))
    assert (series.open, series.high, series.low, series.stale_open, series.opens_real_from) == (None,) * 5
    assert series.fields == ["close"] and "opens_real_from" not in series.describe()
    # A column with no value at all is absent; High and Low without an Open are a range.
    series = load_csv(write(tmp_path, "Date,Open,High,Low,Close\n2020-01-02,,2,1,1.5\n2020-01-03,,3,2,2.5\n"))
    assert series.fields == ["high", "low", "close"] and series.stale_open is None


def test_adj_close_scales_every_price_of_its_day(tmp_path: Path) -> None:
    """A 2:1 split between the days: raw prices halve, Adj Close does not. Each day's O/H/L
    are scaled by its Adj Close ÷ Close, so the adjusted series has no jump."""
    text = (
        "date,OPEN,high,Low,close, adj_close \n"
        "2020-01-02,100,104,98,102,51\n"
        "2020-01-03,51,53,50,52,52\n"
    )
    series = load_csv(write(tmp_path, text))
    assert series.close.tolist() == [51.0, 52.0]
    assert series.open.tolist() == [50.0, 51.0] and series.high.tolist() == [52.0, 53.0] and series.low.tolist() == [49.0, 50.0]
    # Staleness is judged on the raw prices: 51 is not 102 (and 50 would not be 51 after it).
    assert series.stale_open.tolist() == [False, False]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("2020-01-03,100,99,98,98.5", "line 3 (2020-01-03), column High: 99 is below Open 100"),
        ("2020-01-03,100,101,98,101.5", "line 3 (2020-01-03), column High: 101 is below Close 101.5"),
        ("2020-01-03,100,101,100.5,101", "line 3 (2020-01-03), column Low: 100.5 is above Open 100"),
        ("2020-01-03,100,101,99,98.75", "line 3 (2020-01-03), column Low: 99 is above Close 98.75"),
        ("2020-01-03,100,98,99,98.5", "line 3 (2020-01-03), column High: 98 is below Low 99"),
        ("2020-01-03,0,101,99,100", "line 3, column Open: 0 is not positive"),
        ("2020-01-03,100,101,-1,100", "line 3, column Low: -1 is not positive"),
        ("2020-01-03,,101,99,100", "line 3, column Open: value is missing (1 missing in all)"),
        ("2020-01-03,100,NA,99,100", "line 3, column High: value is missing"),
        ("2020-01-03,100,x,99,100", "line 3, column High: 'x' is not a number"),
    ],
)
def test_bad_bars_are_rejected_with_their_line_and_date(tmp_path: Path, rows: str, message: str) -> None:
    with pytest.raises(DataError) as error:
        load_csv(write(tmp_path, f"Date,Open,High,Low,Close\n2020-01-02,100,101,99,100\n{rows}\n2020-01-06,100,101,99,100\n"))
    assert message in str(error.value)


def test_bad_bar_in_memory_names_row_and_date() -> None:
    table = pd.DataFrame({"Date": ["2020-01-02", "2020-01-03"], "High": [2.0, 2.0], "Low": [1.0, 2.5], "Close": [1.5, 2.2]})
    with pytest.raises(DataError, match=r"row 1 \(2020-01-03\), column High: 2 is below Low 2.5"):
        validate_prices(table, name="t", source="memory", first_line=None)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Date,High,Close", "column High without a Low column"),
        ("Date,Low,Close", "column Low without a High column"),
        ("Date,Close,close", "columns 'Close' and 'close' are the same column"),
        ("Date,Close,Adj Close,AdjClose", "columns 'Adj Close' and 'AdjClose' are the same column"),
    ],
)
def test_bad_ohlc_columns(tmp_path: Path, header: str, message: str) -> None:
    values = ",".join(["1"] * (header.count(",")))
    with pytest.raises(DataError, match=message):
        load_csv(write(tmp_path, f"{header}\n2020-01-02,{values}\n2020-01-03,{values}\n"))


def test_missing_ohlc_follow_the_close_policy(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Open,High,Low,Close\n2020-01-02,1,2,1,1.5\n2020-01-03,,2,1,1.5\n2020-01-06,1.5,2,1,1.8\n")
    series = load_csv(path, missing="drop")
    assert series.dropped_dates == ("2020-01-03",) and series.open.tolist() == [1.0, 1.5]
    assert series.stale_open.tolist() == [False, True]  # against the previous kept close


@pytest.mark.parametrize("name", BUILTIN_SERIES)
def test_builtin_fields(name: str) -> None:
    series = load_builtin(name)
    assert series.fields == (["open", "high", "low", "close"] if name in ("sp500", "nasdaq", "msft") else ["close"])
    if series.high is not None:
        assert (series.low <= np.minimum(series.open, series.close)).all()
        assert (series.high >= np.maximum(series.open, series.close)).all()


def test_sp500_closes_are_the_sources_and_its_stale_opens_are_found() -> None:
    import arch.data.sp500

    series = load_builtin("sp500")
    frame = arch.data.sp500.load()
    np.testing.assert_array_equal(series.close.to_numpy(), frame["Close"].to_numpy())
    np.testing.assert_array_equal(series.open.to_numpy(), frame["Open"].to_numpy())
    share = series.stale_open_share_by_year()
    assert all(share[y] > 0.94 for y in range(1999, 2006))
    assert 0.4 < share[2006] < 0.5 and 0.1 < share[2007] < 0.2
    assert all(share[y] < 0.02 for y in (2008, 2009, 2010, 2014, 2015, 2016, 2017, 2018))
    # A second episode: most opens from December 2012 to April 2013 repeat the close.
    episode = series.stale_open["2012-12-01":"2013-04-30"].mean()
    assert episode > 0.7
    assert series.opens_real_from == pd.Timestamp("2013-04-29")
    assert series.describe()["opens_real_from"] == "2013-04-29"


def test_nasdaq_opens_are_real_from_the_start() -> None:
    series = load_builtin("nasdaq")
    assert series.opens_real_from == series.close.index[0]
    assert max(series.stale_open_share_by_year().values()) < 0.01


def test_first_real_open_rule() -> None:
    real, stale = np.zeros(600, dtype=bool), np.ones(600, dtype=bool)
    assert first_real_open(real) == 0 and first_real_open(stale) is None
    # A stale era, then real: the first real day (with a clean month after it).
    era = np.r_[np.ones(300, dtype=bool), np.zeros(600, dtype=bool)]
    assert first_real_open(era) == 300
    # Isolated stale days (1 in 50) do not count; an episode of 40 in a row does.
    sparse = np.zeros(1000, dtype=bool)
    sparse[::50] = True
    assert first_real_open(sparse) == 1
    sparse[500:540] = True
    assert first_real_open(sparse) == 540
    # Stale to the end: opens never become real.
    assert first_real_open(np.r_[np.zeros(600, dtype=bool), np.ones(100, dtype=bool)]) is None
    # The series is shorter than the window: the whole series is the one window.
    assert first_real_open(np.array([False, True, False])) is None and first_real_open(np.zeros(5, dtype=bool)) == 0


def test_stale_open_tolerance_is_relative() -> None:
    close = np.array([0.07533, 2000.0, 2000.0])
    opens = np.array([0.07, 0.07533 * (1 + 5e-10), 2000.0 + 0.004])
    assert stale_open_mask(opens, close).tolist() == [False, True, False]


def test_train_csv_trains_the_range_configuration_when_the_file_has_high_and_low(tmp_path: Path) -> None:
    """A volatility bundle from a file with High and Low gets spx-range-vol-5d's configuration
    (its channels, anchor, stack, calibration window); from closes only, spx-vol-5d's."""
    import argparse

    from wavelet_pipeline.cli import csv_config
    from wavelet_pipeline.config import SPX_RANGE_VOL_5D, SPX_VOL_5D

    path = write(tmp_path, GOOD)
    args = argparse.Namespace(csv=path, name="mine", target="realized_vol_5d", missing="error", test_years=(2015, 2016), first_oos_year=None)
    ranged = csv_config(args, load_csv(path))
    assert ranged.features == SPX_RANGE_VOL_5D.features and ranged.anchor == SPX_RANGE_VOL_5D.anchor and ranged.stack == "equal"
    assert ranged.calibration_years == 1 and ranged.first_oos_year == 2011 and ranged.data == str(path)
    closes = write(tmp_path, "Date,Close\n2020-01-02,100\n2020-01-03,101\n")
    assert csv_config(argparse.Namespace(**{**vars(args), "csv": closes}), load_csv(closes)).features == SPX_VOL_5D.features
