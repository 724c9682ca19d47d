#!/usr/bin/env bash
# One database and one owner role per server (Prefect, MLflow), so neither can read the other's tables.
# Run once by the official postgres image on an empty data folder (/docker-entrypoint-initdb.d/); the passwords come
# from the container's environment, never from this file.
set -euo pipefail
: "${PREFECT_DB_PASSWORD:?PREFECT_DB_PASSWORD is required}"
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is required}"

create() {  # role/database name, password
    psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
        --set=name="$1" --set=password="$2" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
SQL
}

create prefect "$PREFECT_DB_PASSWORD"
create mlflow "$MLFLOW_DB_PASSWORD"
