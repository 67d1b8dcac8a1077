"""Observability: the Prometheus metrics of a run and what they are computed from.

- :mod:`~flows.observability.metrics`: :class:`SalvageMetrics` and its flow observer;
- :mod:`~flows.observability.declarations`: every metric declared, with its buckets;
- :mod:`~flows.observability.labels`: bounded, normalised label values, never personal data;
- :mod:`~flows.observability.stages`: open cases by recovery stage, from the output records;
- :mod:`~flows.observability.online_uplift`: uplift by first action, kept current;
- :mod:`~flows.observability.server`: ``/metrics`` over HTTP.

The CLI options (``--metrics-port``, ``--metrics-file``) are :mod:`flows.cli.metrics_options`.
"""
