# [START howto_emulator_pytest]
# test_my_dag.py -- run with: AIRFLOW_HOME=$(mktemp -d) pytest test_my_dag.py
from airflow.sdk import DAG

from airflow_provider_bloom.operators.images import BloomGenerateImageOperator


def test_my_dag(bloom_emulator, bloom_connection, bloom_dag_runner):
    bloom_emulator.add_fault("images.list", "status", count=3, status=429)  # a 429 storm
    with DAG("my_bloom_dag", schedule=None) as dag:
        BloomGenerateImageOperator(task_id="generate", prompt="a red bicycle", wait_for_completion=True)

    result = bloom_dag_runner(dag)

    assert result.state == "success"
    (image,) = result.xcom("generate")
    assert image["status"] == "completed"
    assert bloom_emulator.requests()["by_operation"]["images.list"] >= 4  # the storm was retried
    assert bloom_emulator.requests()["paid_posts"] == 1  # and nothing was paid twice


# [END howto_emulator_pytest]
