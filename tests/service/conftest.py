"""A service whose clock the test moves: `clock[0]` is now, for holds that expire."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wallet_service import WalletService


@pytest.fixture
def clock() -> list[datetime]:
    return [datetime.now(UTC).replace(microsecond=0)]


@pytest.fixture
def timed(database, service, clock) -> WalletService:
    return WalletService(database, clock=lambda: clock[0])
