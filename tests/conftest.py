"""Shared pytest configuration: fixtures for the real servers live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.redis_server",
    "tests.fixtures.kafka_broker",
    "tests.fixtures.prometheus_server",
]
