"""Fixtures for the alerts tests: the shared loopback HTTP stub (tests/http_stub.py) as a webhook."""

from __future__ import annotations

import pytest

from tests.http_stub import HttpStub


@pytest.fixture
def http_stub():
    with HttpStub() as stub:
        yield stub
