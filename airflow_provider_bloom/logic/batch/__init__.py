"""Batches of thousands of Bloom requests in one task: the I/O-free and Airflow-free parts.

* :mod:`.rows`: reading rows (lists of dicts, CSV, JSON Lines), checking every row against Bloom's
  spec before anything is sent (all problems at once), and what each row costs;
* :mod:`.journal`: the durable journal of a batch (what was sent, what Bloom accepted), written with
  group commits to any key-value or file store and replayed on a retry;
* :mod:`.manifest`: the batch's result, one JSON Lines record per row, and its small summary;
* :mod:`.progress`: the progress line a running batch logs every few seconds.

The operators that use them are in :mod:`airflow_provider_bloom.operators.batch`.
"""
