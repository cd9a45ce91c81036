from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path

from conversations import views
from escalation import views as escalation_views
from support_bot import health

urlpatterns = [
    path("", views.demo, name="demo"),
    # Browsers ask for it on every page; no icon is better than a logged 404.
    path("favicon.ico", lambda request: HttpResponse(status=204)),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("agent/", escalation_views.console, name="agent-console"),
    path("dashboard/", include("oversight.urls")),
    path("admin/", admin.site.urls),
]
