import json

import numpy as np

from range_vectors import CASES, FIXTURE, fixture


def test_committed_fixture_is_what_the_pipeline_computes() -> None:
    """The server's parity test reads the committed file; a change to the Python features
    must regenerate it (tests/range_vectors.py), or this fails."""
    assert json.loads(FIXTURE.read_text()) == json.loads(fixture())


def test_every_fixture_row_is_complete_and_covers_stale_and_flat_days() -> None:
    cases = json.loads(fixture())["cases"]
    for case in cases:
        rows = np.asarray(case["features"], dtype=np.float64)
        assert rows.size and not np.isnan(rows).any(), case["name"]
    gk = next(b for name, _, _, b in CASES if name == "garman-klass-stale-opens")
    assert (gk.open[41:70] == gk.close[40:69]).all()
    assert any((b.high == b.low).any() for *_, b in CASES)
