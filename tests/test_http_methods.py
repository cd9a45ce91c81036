"""Methods that echo a request back are refused on every page."""

import pytest
from django.test import Client


@pytest.mark.parametrize("path", ["/", "/admin/login/", "/healthz", "/no-such-page"])
def test_trace_is_refused(client: Client, path: str) -> None:
    response = client.generic("TRACE", path)

    assert response.status_code == 405
    assert "TRACE" not in response["Allow"]


def test_the_demo_page_still_answers_get(client: Client, db: None) -> None:
    assert client.get("/").status_code == 200
