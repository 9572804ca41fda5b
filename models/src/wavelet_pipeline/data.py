"""Daily price series: the real ones that ship inside PyPI packages, and users' CSV files.

Every series goes through one validator, so a bundled series and a user's file obey the
same rules. Missing closing prices follow an explicit policy, never a silent fill:

* ``missing="error"`` (the default for CSV files): a blank or NA Close is an error that
  names its line.
* ``missing="drop"``: the row is removed and counted; the count and the dropped dates are
  kept on the series and written into the bundle manifest. Rows are never interpolated or
  forward-filled, because a filled price invents a zero return on that day.
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


class DataError(ValueError):
    """A price file that cannot be used, with the line and column at fault."""


@dataclass(frozen=True)
class PriceSeries:
    name: str
    source: str
    close: pd.Series  # float64 indexed by a strictly increasing DatetimeIndex
    dropped_dates: tuple[str, ...] = field(default=())

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
        }


def _version(package: str) -> str:
    return importlib.metadata.version(package)


def load_builtin(name: str) -> PriceSeries:
    """One of the daily series shipped inside PyPI packages (no download needed)."""
    if name in ("sp500", "nasdaq"):
        module = __import__(f"arch.data.{name}", fromlist=["load"])
        frame = module.load()
        source = f"arch.data.{name} (arch {_version('arch')})"
        table = pd.DataFrame({"Date": frame.index, "Close": frame["Close"].to_numpy()})
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
        table = frame[["Date", "Close"]]
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
    """A user's CSV with a Date and a Close column (Open, High, Low, Volume optional)."""
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


def _canonical_columns(table: pd.DataFrame) -> pd.DataFrame:
    by_lower = {str(c).strip().lower(): c for c in table.columns}
    renames = {}
    for wanted in ("Date", "Close"):
        if wanted.lower() not in by_lower:
            found = ", ".join(map(str, table.columns)) or "none"
            raise DataError(f"missing required column {wanted!r} (columns found: {found})")
    for wanted in ("Date", *PRICE_COLUMNS, "Volume"):
        if wanted.lower() in by_lower:
            renames[by_lower[wanted.lower()]] = wanted
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
    """Check a Date/Close table row by row and return the clean closing prices."""
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

    columns = {c: _numbers(table, c, first_line) for c in (*PRICE_COLUMNS, "Volume") if c in table}
    for column, values in columns.items():
        bad = np.flatnonzero(values < 0 if column == "Volume" else values <= 0)
        if bad.size:
            i = int(bad[0])
            kind = "negative" if column == "Volume" else "not positive"
            raise DataError(f"{_where(table, i, first_line)}, column {column}: {values[i]:g} is {kind}")

    close = columns["Close"]
    blank = np.isnan(close)
    if blank.any() and missing == "error":
        i = int(np.flatnonzero(blank)[0])
        raise DataError(
            f"{_where(table, i, first_line)}, column Close: value is missing "
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

    series = pd.Series(close[keep], index=pd.DatetimeIndex(kept_dates.dt.normalize(), name="Date"), name="Close")
    return PriceSeries(name=name, source=source, close=series, dropped_dates=dropped)
