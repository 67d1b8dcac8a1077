"""Webhook connector: interventions delivered as signed HTTP requests.

- :mod:`~flows.connectors.webhooks.dispatcher`: routing, ledger claims, quick attempts and
  slow retries, dead letters (:class:`Dispatcher`);
- :mod:`~flows.connectors.webhooks.signing`: the headers of a signed request (the scheme
  itself is :mod:`operators.signature`);
- :mod:`~flows.connectors.webhooks.http`: one POST, no redirects followed;
- :mod:`~flows.connectors.webhooks.metrics`: the dispatcher's Prometheus metrics;
- :mod:`~flows.connectors.webhooks.backoff`: when to try again;
- :mod:`~flows.connectors.webhooks.payload`: the request body and the dead-letter record;
- :mod:`~flows.connectors.webhooks.sink`: the Bytewax sink.
"""

from flows.connectors.webhooks.backoff import backoff_delay, retry_delay
from flows.connectors.webhooks.dispatcher import DeliveryResult, Dispatcher
from flows.connectors.webhooks.http import AttemptResult, post_json
from flows.connectors.webhooks.metrics import DispatchMetrics
from flows.connectors.webhooks.payload import dead_letter_record, message_text, webhook_body
from flows.connectors.webhooks.signing import signed_headers
from flows.connectors.webhooks.sink import DispatchSink

__all__ = [
    "AttemptResult",
    "DeliveryResult",
    "DispatchMetrics",
    "DispatchSink",
    "Dispatcher",
    "backoff_delay",
    "dead_letter_record",
    "message_text",
    "post_json",
    "retry_delay",
    "signed_headers",
    "webhook_body",
]
