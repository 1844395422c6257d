# Airflow 3 with airflow-provider-bloom installed: the image every service of docker-compose.yaml runs
# (api-server, scheduler, dag-processor, triggerer, the optional celery worker, and the Bloom emulator).
#
#   docker build -t airflow-provider-bloom:local .
#
# Based on the official image, extended the way Airflow's docs recommend ("Extending the image"):
# install the package as the airflow user, pinned to the image's Airflow version.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

ARG AIRFLOW_VERSION
USER airflow
WORKDIR /opt/airflow

# The package (only what building it needs, so editing DAGs or tests does not rebuild this layer).
COPY --chown=airflow:0 pyproject.toml README.md LICENSE /opt/bloom/src/
COPY --chown=airflow:0 airflow_provider_bloom /opt/bloom/src/airflow_provider_bloom
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/bloom/src

# The Bloom connection from the environment (emulator by default, Bloom when BLOOM_API_KEY is set).
COPY --chown=airflow:0 scripts/bloom_connection.py scripts/docker-entrypoint.sh /opt/bloom/
# The example DAGs (docker-compose.yaml mounts ./dags_examples over them, so edits show up live).
COPY --chown=airflow:0 dags_examples /opt/airflow/dags

ENV BLOOM_EMULATOR_URL=http://bloom-emulator:8787/api/v1 \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

ENTRYPOINT ["/usr/bin/dumb-init", "--", "/opt/bloom/docker-entrypoint.sh"]
CMD []
