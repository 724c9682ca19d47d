import pytest


@pytest.fixture(autouse=True)
def _prefect(prefect_api_url: str) -> str:
    return prefect_api_url
