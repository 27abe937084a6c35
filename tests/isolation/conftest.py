from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.isolation.seed import TenantSeed, checksum, seed_tenant, unseeded_tenant_models


@dataclass
class World:
    a: TenantSeed
    b: TenantSeed
    b_checksum: dict[str, str]


@pytest.fixture
def world(db: Any) -> World:
    missing = unseeded_tenant_models()
    assert missing == [], f"add these to SEED_FACTORIES in tests/isolation/seed.py: {missing}"
    a, b = seed_tenant("A"), seed_tenant("B")
    return World(a=a, b=b, b_checksum=checksum(b))
