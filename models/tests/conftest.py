"""Fixtures shared by the import tests."""

from __future__ import annotations

import pytest

import byom_fixtures as fx


@pytest.fixture(scope="session")
def trained() -> fx.Trained:
    """A guide user's tiny models, trained once for every test that imports or serves them (read only)."""
    return fx.train()
