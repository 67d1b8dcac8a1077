"""Fixtures shared by the webhook tests of this directory (``webhook_rig``)."""

from tests.flows.webhook_rig import receiver, redis_stores, stores

__all__ = ["receiver", "redis_stores", "stores"]
