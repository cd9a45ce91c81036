"""A link whose query carries a NUL (%00) is read as if it were not there:
the page answers as for any value it does not know, never with a 500."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/admin/oversight/reviewitem/?status=%00",
        "/admin/oversight/reviewitem/?question=a%00b",
        "/admin/conversations/conversation/?status=%00",
        "/admin/escalation/escalation/?reason=%00",
        "/admin/knowledge/guideline/?kind=%00",
        "/admin/oversight/alert/?kind%00=x",
    ],
)
def test_admin_lists_filtered_with_a_nul_answer(
    admin_client: Client, path: str
) -> None:
    response = admin_client.get(path)

    assert response.status_code == 200


def test_dashboard_reads_the_dates_without_the_nul(admin_client: Client) -> None:
    response = admin_client.get(
        "/dashboard/?period=custom&from=2026-11-01%00&to=%002026-11-02"
    )

    assert response.status_code == 200
    period = response.context["period"]
    assert (period.key, period.error) == ("custom", "")
    assert response.context["date_from"] == "2026-11-01"
