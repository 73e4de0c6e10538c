"""The executor grid: `executor` is each executor of tests/support/executors.py in turn ("native-avx512vnni",
"native-avx2", "native-portable", "csim", "board"), created once per module and closed after it."""
from __future__ import annotations

import pytest

from tests.support import executors


@pytest.fixture(scope="module", params=executors.EXECUTOR_IDS)
def executor_id(request) -> str:
    reason = executors.unavailable(request.param)
    if reason:
        pytest.skip(reason)
    return request.param


@pytest.fixture(scope="module")
def executor(executor_id):
    ex = executors.create(executor_id)
    yield ex
    ex.close()
