"""Connectors: how Salvage talks to the systems around it.

- :mod:`flows.connectors.kafka`: the live input source, the output sink, topics, producing.
- :mod:`flows.connectors.webhooks`: signed webhook delivery with retries and a ledger.
"""
