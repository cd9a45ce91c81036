from typing import Any

from django import template

from ..models import Alert

register = template.Library()


@register.inclusion_tag("oversight/alert_banner.html", takes_context=True)
def alert_banner(context: dict[str, Any]) -> dict[str, Any]:
    """Open alerts, for staff only: one query on each page that shows it."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_staff:
        return {"alerts": []}
    alerts = list(Alert.objects.filter(closed_at__isnull=True))
    return {"alerts": alerts, "dashboard_link": context.get("is_admin_page", True)}
