"""Daily price series: the real ones that ship inside PyPI packages, and users' CSV files.

Every series goes through one validator, so a bundled series and a user's file obey the
same rules. Missing closing prices follow an explicit policy, never a silent fill:

* ``missing="error"`` (the default for CSV files): a blank or NA Close is an error that
  names its line.
* ``missing="drop"``: the row is removed and counted; the count and the dropped dates are
  kept on the series and written into the bundle manifest. Rows are never interpolated or
  forward-filled, because a filled price invents a zero return on that day.

Open, High and Low are kept where the source has them (the arch S&P 500 and NASDAQ sets,
pmdarima's MSFT, a user's CSV); they follow the same missing-value policy as the close (a
blank O/H/L is an error, or drops its row under ``missing="drop"``). A column that is blank
on every row counts as absent. High and Low come together (a range needs both); Open may be
absent. Each kept row must satisfy Low ≤ min(Open, Close) ≤ max(Open, Close) ≤ High, else an
error names the row and its date.

Adjusted prices: where a file has an ``Adj Close`` column (case, spaces and underscores
ignored), the close becomes Adj Close and Open/High/Low are multiplied by the same day's
Adj Close ÷ Close, so splits and dividends move neither the returns nor the ranges (the
ratios within a day are unchanged). The checks above run on the raw prices.

Stale opens: some sources fill the open with the previous day's close. The S&P 500 in
``arch.data`` does so on about 96 % of the days of 1999–2005, and again on most days from
December 2012 to April 2013; NASDAQ's opens are real throughout. A day's open is *stale* when
it equals the previous close to a relative 1e-9 (see ``STALE_OPEN_RTOL``);
``PriceSeries.stale_open`` flags each day and ``opens_real_from`` (see ``first_real_open``)
gives the date from which the source's opens are real.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

MissingPolicy = Literal["error", "drop"]
PRICE_COLUMNS = ("Open", "High", "Low", "Close")
# Longest run of calendar days between two trading days that is still a normal closure
# (the four-day closure after 11 September 2001 spans seven days).
DEFAULT_MAX_GAP_DAYS = 10
ADJ_CLOSE = "Adj Close"
# A stale open is a copied number, so it equals the previous close up to float and CSV
# rounding (~1e-15): 1e-9 is far above that and far below any real price move (one basis
# point is 1e-4). A tolerance of a cent was rejected: it depends on the price level (pmdarima's
# split-adjusted MSFT trades at $0.07 in 1986, where a cent is 13 % and would flag real
# opens; on an index at 2000 points it is 5e-6). Both flag the same days on sp500 and nasdaq.
STALE_OPEN_RTOL = 1e-9
# Opens are real from the first day after which every window of this many trading days (a
# year) holds fewer than this share of stale opens (first_real_open),
REAL_OPENS_WINDOW = 250
REAL_OPENS_MAX_STALE_SHARE = 0.10
REAL_OPENS_SETTLE = 20  # and the first such day whose next 20 days (a month) are as clean


class DataError(ValueError):
    """A price file that cannot be used, with the line and column at fault."""


@dataclass(frozen=True)
class PriceSeries:
    name: str
    source: str
    close: pd.Series  # float64 indexed by a strictly increasing DatetimeIndex
    dropped_dates: tuple[str, ...] = field(default=())
    # Float64 on close's index where the source has them, else None (adjusted like the close).
    open: pd.Series | None = None
    high: pd.Series | None = None
    low: pd.Series | None = None
    # Bool on close's index where there are opens: the open repeats the previous close.
    stale_open: pd.Series | None = None

    @property
    def fields(self) -> list[str]:
        """The price fields the source carries, of open, high, low, close."""
        return [f for f in ("open", "high", "low", "close") if getattr(self, f) is not None]

    @property
    def opens_real_from(self) -> pd.Timestamp | None:
        """The date from which the source's opens are real (first_real_open); None without
        opens or when they never become real. A summary of the whole series (it looks ahead):
        for choosing data and estimators, never inside a feature (those use the per-day
        ``stale_open`` flags, which only look back one day)."""
        if self.stale_open is None:
            return None
        first = first_real_open(self.stale_open.to_numpy())
        return None if first is None else self.close.index[first]

    def stale_open_share_by_year(self) -> dict[int, float]:
        """Share of each calendar year's days whose open is stale ({} without opens)."""
        if self.stale_open is None:
            return {}
        share = self.stale_open.groupby(self.stale_open.index.year).mean()
        return {int(year): float(value) for year, value in share.items()}

    @property
    def start(self) -> str:
        return self.close.index[0].strftime("%Y-%m-%d")

    @property
    def end(self) -> str:
        return self.close.index[-1].strftime("%Y-%m-%d")

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "rows": int(self.close.size),
            "missing_policy_dropped_rows": len(self.dropped_dates),
            "dropped_dates": list(self.dropped_dates),
            "fields": self.fields,
            **(
                {
                    "opens_real_from": None if self.opens_real_from is None else f"{self.opens_real_from:%Y-%m-%d}",
                    "stale_open_share_by_year": {
                        str(year): round(share, 4) for year, share in self.stale_open_share_by_year().items()
                    },
                }
                if self.stale_open is not None
                else {}
            ),
        }


def stale_open_mask(open_: np.ndarray, close: np.ndarray, rtol: float = STALE_OPEN_RTOL) -> np.ndarray:
    """True on day t when its open equals the previous close to a relative ``rtol`` (never on
    the first day, which has no previous close)."""
    open_, close = np.asarray(open_, dtype=np.float64), np.asarray(close, dtype=np.float64)
    stale = np.zeros(open_.shape, dtype=bool)
    stale[1:] = np.abs(open_[1:] - close[:-1]) <= rtol * close[:-1]
    return stale


def first_real_open(
    stale: np.ndarray,
    window: int = REAL_OPENS_WINDOW,
    max_share: float = REAL_OPENS_MAX_STALE_SHARE,
    settle: int = REAL_OPENS_SETTLE,
) -> int | None:
    """Index of the first day from which opens are real, or None.

    Two steps, both with windows that look forward from the answer:

    1. ``start``: the day after the start of the last run of ``window`` consecutive days (the
       whole series if shorter) holding ``max_share`` or more stale opens, so every such run
       from ``start`` on holds fewer (0 when none does; None when the last one does). Isolated
       stale days (a handful a year on NASDAQ) do not count, a stale episode does.
    2. Such a run may still begin in the tail of the episode (the S&P 500's March 2013 is
       75 % stale): the answer is the first day from ``start`` whose open is real and whose
       next ``settle`` days hold fewer than ``max_share`` stale opens (None if no day does).

    A trailing window (the share of the last 250 days) was rejected: it reports the day the
    window has forgotten an episode, up to a year after the opens became real."""
    stale = np.asarray(stale, dtype=bool)
    w = min(window, stale.size)
    if w == 0:
        return None
    counts = np.convolve(stale.astype(np.int64), np.ones(w, dtype=np.int64), mode="valid")  # day s .. s+w-1
    bad = np.flatnonzero(counts >= max_share * w)
    if bad.size and bad[-1] == counts.size - 1:
        return None
    start = int(bad[-1]) + 1 if bad.size else 0
    for d in range(start, stale.size):
        ahead = stale[d : d + settle]
        if not stale[d] and ahead.sum() < max_share * ahead.size:
            return d
    return None


def _version(package: str) -> str:
    return importlib.metadata.version(package)


def load_builtin(name: str) -> PriceSeries:
    """One of the daily series shipped inside PyPI packages (no download needed)."""
    if name in ("sp500", "nasdaq"):
        module = __import__(f"arch.data.{name}", fromlist=["load"])
        frame = module.load()
        source = f"arch.data.{name} (arch {_version('arch')})"
        # Index levels: Adj Close equals Close, so the adjustment changes nothing.
        table = frame[[*PRICE_COLUMNS, ADJ_CLOSE]].rename_axis("Date").reset_index()
        missing: MissingPolicy = "error"
    elif name in ("vix", "wti"):
        module = __import__(f"arch.data.{name}", fromlist=["load"])
        frame = module.load()
        source = f"arch.data.{name} (arch {_version('arch')})"
        # FRED's WTI series has blank rows on exchange holidays: drop them, counted.
        table = pd.DataFrame({"Date": frame.index, "Close": frame.iloc[:, 0].to_numpy()})
        missing = "drop"
    elif name == "msft":
        from pmdarima.datasets import load_msft

        frame = load_msft()
        source = f"pmdarima.datasets.load_msft (pmdarima {_version('pmdarima')})"
        # Already split-adjusted by its source (no Adj Close column): taken as it is.
        table = frame[["Date", *PRICE_COLUMNS]]
        missing = "error"
    else:
        raise DataError(f"unknown built-in series {name!r}; choose one of {', '.join(BUILTIN_SERIES)}")
    return validate_prices(table, name=name, source=source, missing=missing, first_line=None)


BUILTIN_SERIES = ("sp500", "nasdaq", "vix", "wti", "msft")


def load_csv(
    path: str | Path,
    *,
    missing: MissingPolicy = "error",
    max_gap_days: int = DEFAULT_MAX_GAP_DAYS,
) -> PriceSeries:
    """A user's CSV with a Date and a Close column (Open, High, Low, Adj Close, Volume optional;
    see the module's notes on adjusted prices)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read as CSV: {exc}") from exc
    table.columns = [str(c).strip() for c in table.columns]
    return validate_prices(
        table,
        name=path.stem,
        source=f"csv:{path.name}",
        missing=missing,
        max_gap_days=max_gap_days,
        first_line=2,
    )


def _where(table: pd.DataFrame, i: int, first_line: int | None) -> str:
    """How a person finds row i: its line in the file, or its date for in-memory tables."""
    if first_line is not None:
        return f"line {first_line + i}"
    return f"row {i} ({table['Date'].iloc[i]})"


def _column_key(name: object) -> str:
    return "".join(str(name).lower().split()).replace("_", "")


def _canonical_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Rename the known columns to their canonical spelling (case, spaces and underscores
    ignored: ' adj_close ' is Adj Close)."""
    by_key: dict[str, object] = {}
    for c in table.columns:
        key = _column_key(c)
        if key in by_key:
            raise DataError(f"columns {by_key[key]!r} and {c!r} are the same column")
        by_key[key] = c
    for wanted in ("Date", "Close"):
        if _column_key(wanted) not in by_key:
            found = ", ".join(map(str, table.columns)) or "none"
            raise DataError(f"missing required column {wanted!r} (columns found: {found})")
    renames = {by_key[_column_key(w)]: w for w in ("Date", *PRICE_COLUMNS, ADJ_CLOSE, "Volume") if _column_key(w) in by_key}
    return table.rename(columns=renames)


def _is_blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip().upper() in ("", "NA", "NAN", "NULL", ".")


def _numbers(table: pd.DataFrame, column: str, first_line: int | None) -> np.ndarray:
    """Column as floats, NaN where blank; an unparseable value is an error naming its line."""
    values = np.full(len(table), np.nan)
    for i, raw in enumerate(table[column].tolist()):
        if _is_blank(raw):
            continue
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise DataError(f"{_where(table, i, first_line)}, column {column}: {raw!r} is not a number") from None
        if not np.isfinite(number):
            raise DataError(f"{_where(table, i, first_line)}, column {column}: {raw!r} is not a finite number")
        values[i] = number
    return values


def validate_prices(
    table: pd.DataFrame,
    *,
    name: str,
    source: str,
    missing: MissingPolicy = "error",
    max_gap_days: int = DEFAULT_MAX_GAP_DAYS,
    first_line: int | None,
) -> PriceSeries:
    """Check a Date/Close (Open/High/Low/Adj Close) table row by row and return the clean prices."""
    if missing not in ("error", "drop"):
        raise DataError(f"missing must be 'error' or 'drop', not {missing!r}")
    table = _canonical_columns(table).reset_index(drop=True)
    if table.empty:
        raise DataError("the table has no rows")

    dates = pd.to_datetime(table["Date"], errors="coerce", format="mixed")
    unparsed = np.flatnonzero(dates.isna().to_numpy())
    if unparsed.size:
        i = int(unparsed[0])
        raise DataError(f"{_where(table, i, first_line)}, column Date: cannot parse {table['Date'].iloc[i]!r} as a date")
    day = dates.dt.normalize().to_numpy()
    for i in range(1, len(day)):
        if day[i] == day[i - 1]:
            raise DataError(
                f"{_where(table, i, first_line)}, column Date: duplicate date {dates.iloc[i]:%Y-%m-%d} "
                f"(also on {_where(table, i - 1, first_line)})"
            )
        if day[i] < day[i - 1]:
            raise DataError(
                f"{_where(table, i, first_line)}, column Date: {dates.iloc[i]:%Y-%m-%d} comes after "
                f"{dates.iloc[i - 1]:%Y-%m-%d}; dates must be in increasing order"
            )

    prices = (*PRICE_COLUMNS, ADJ_CLOSE)
    columns = {c: _numbers(table, c, first_line) for c in (*prices, "Volume") if c in table}
    # An optional price column with no value at all is absent, not missing on every row.
    columns = {c: v for c, v in columns.items() if c in ("Close", "Volume") or not np.isnan(v).all()}
    if ("High" in columns) != ("Low" in columns):
        has, lacks = ("High", "Low") if "High" in columns else ("Low", "High")
        raise DataError(f"column {has} without a {lacks} column: a daily range needs both")
    for column, values in columns.items():
        bad = np.flatnonzero(values < 0 if column == "Volume" else values <= 0)
        if bad.size:
            i = int(bad[0])
            kind = "negative" if column == "Volume" else "not positive"
            raise DataError(f"{_where(table, i, first_line)}, column {column}: {values[i]:g} is {kind}")

    present = [c for c in ("Close", *PRICE_COLUMNS[:3], ADJ_CLOSE) if c in columns]
    blank_in = {c: np.isnan(columns[c]) for c in present}
    blank = np.logical_or.reduce(list(blank_in.values()))
    if blank.any() and missing == "error":
        i = int(np.flatnonzero(blank)[0])
        column = next(c for c in present if blank_in[c][i])
        raise DataError(
            f"{_where(table, i, first_line)}, column {column}: value is missing "
            f"({int(blank.sum())} missing in all); fix the file or pass missing='drop' to drop such rows"
        )
    dropped = tuple(f"{d:%Y-%m-%d}" for d in dates[blank])
    keep = ~blank
    kept_dates = dates[keep].reset_index(drop=True)
    kept_rows = np.flatnonzero(keep)
    if keep.sum() < 2:
        raise DataError("fewer than two usable prices")

    gaps = kept_dates.diff().dt.days.to_numpy()[1:]
    too_long = np.flatnonzero(gaps > max_gap_days)
    if too_long.size:
        j = int(too_long[0])
        i = int(kept_rows[j + 1])
        raise DataError(
            f"{_where(table, i, first_line)}, column Date: gap of {int(gaps[j])} days after "
            f"{kept_dates.iloc[j]:%Y-%m-%d} (more than {max_gap_days}); the series must be continuous"
        )

    kept = {c: columns[c][keep] for c in present}
    _check_bars(table, kept, kept_rows, dates, first_line)
    index = pd.DatetimeIndex(kept_dates.dt.normalize(), name="Date")
    close = kept["Close"]
    stale = stale_open_mask(kept["Open"], close) if "Open" in kept else None  # on the raw prices
    scale = kept[ADJ_CLOSE] / close if ADJ_CLOSE in kept else np.ones(close.size)

    def adjusted(column: str) -> pd.Series | None:
        if column not in kept:
            return None
        values = kept[ADJ_CLOSE] if column == "Close" and ADJ_CLOSE in kept else kept[column] * scale
        return pd.Series(values, index=index, name=column)

    series = adjusted("Close")
    assert series is not None
    return PriceSeries(
        name=name, source=source, close=series, dropped_dates=dropped,
        open=adjusted("Open"), high=adjusted("High"), low=adjusted("Low"),
        stale_open=None if stale is None else pd.Series(stale, index=index, name="stale_open"),
    )


def _check_bars(
    table: pd.DataFrame, kept: dict[str, np.ndarray], rows: np.ndarray, dates: pd.Series, first_line: int | None
) -> None:
    """Low ≤ Open, Close ≤ High on every kept row; the first row that breaks it is named."""
    if "High" not in kept:
        return
    high, low = kept["High"], kept["Low"]
    rules = [("High", "below", "Low", high < low)]
    for other in ("Open", "Close"):
        if other in kept:
            rules += [("Low", "above", other, low > kept[other]), ("High", "below", other, high < kept[other])]
    broken = [(int(np.flatnonzero(bad)[0]), k) for k, (*_, bad) in enumerate(rules) if bad.any()]
    if not broken:
        return
    j, k = min(broken)
    column, relation, other, _ = rules[k]
    i = int(rows[j])
    where = _where(table, i, first_line) + (f" ({dates.iloc[i]:%Y-%m-%d})" if first_line is not None else "")
    raise DataError(
        f"{where}, column {column}: {kept[column][j]:.10g} is {relation} {other} {kept[other][j]:.10g} "
        "(a bar needs Low ≤ Open, Close ≤ High)"
    )
