"""Integrations with other systems, each behind an optional extra:

* ``faktory.contrib.django``: a ``django.tasks`` backend (extra ``django``).
* ``faktory.contrib.metrics``: worker metrics, Prometheus exporter (extra ``metrics``
  for the exporter; the middleware and its hook need nothing).
* ``faktory.contrib.tracing``: OpenTelemetry producer hook and worker middleware
  (extra ``tracing``).

Importing one whose extra is missing raises ``faktory.MissingExtraError`` (an
``ImportError``) saying which extra to install.
"""
