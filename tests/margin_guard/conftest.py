"""Fixtures the guard's request-path tests share."""
from __future__ import annotations

import pytest

from margin_guard import decision
from margin_guard.models import GuardPolicy, GuardState


@pytest.fixture
def throttled(tenant):
    """A tenant whose customer c1 is throttled (gpt-4o to gpt-4o-mini) by an enforced policy,
    its profile published."""
    policy = GuardPolicy.objects.create(tenant=tenant, name="floor", scope="TENANT",
                                        mode="ENFORCE", downgrade_map={"gpt-4o": "gpt-4o-mini"})
    state = GuardState.objects.create(tenant=tenant, customer_id="c1", level=2,
                                      mode="ENFORCE", policy=policy)
    decision.profile_store(state, policy)
    return tenant
