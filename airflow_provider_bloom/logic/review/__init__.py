"""The decisions of a human review of Bloom images, free of I/O and of Airflow.

:class:`~airflow_provider_bloom.operators.review.BloomImageReviewOperator` asks, waits and writes; what it
decides lives here:

* :mod:`.paging`: which images of a manifest wait for a review, the review's round, its pages;
* :mod:`.body`: the Markdown a reviewer reads, one row per image, user text escaped and thumbnails that
  never hold a key;
* :mod:`.answers`: the reviewer's buttons and form read into decisions (or
  :class:`~airflow_provider_bloom.exceptions.BloomReviewAnswerError`), the task's result, and the
  ``review`` field each manifest record gets.
"""
