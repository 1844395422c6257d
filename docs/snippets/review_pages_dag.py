"""The review how-to: a 500-image batch reviewed as mapped pages of 25, merged into one reviewed manifest."""

from airflow.sdk import DAG

with DAG("bloom_docs_review_pages", schedule=None):
    # [START howto_operator_bloom_review_pages]
    from airflow.sdk import task

    from airflow_provider_bloom.operators.batch import BloomGenerateBatchOperator
    from airflow_provider_bloom.operators.review import (
        BloomImageReviewOperator,
        merge_reviews,
        review_pages,
    )

    generate = BloomGenerateBatchOperator(task_id="generate", rows="catalogue.csv", deferrable=True)

    pages = task(review_pages)(generate.output, page_size=25)  # [1, 2, ..., 20] for 500 images
    review = BloomImageReviewOperator.partial(
        task_id="review",
        images=generate.output,
        page_size=25,
        response_timeout=24 * 3600,  # seconds; then on_timeout decides (default: the task fails)
    ).expand(page=pages)
    reviewed = task(merge_reviews)(generate.output, review.output)  # the reviewed manifest's summary
    # [END howto_operator_bloom_review_pages]
