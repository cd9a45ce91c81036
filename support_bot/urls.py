from django.contrib import admin
from django.urls import path

from conversations import views
from escalation import views as escalation_views

urlpatterns = [
    path("", views.demo, name="demo"),
    path("healthz", views.healthz, name="healthz"),
    path("agent/", escalation_views.console, name="agent-console"),
    path("admin/", admin.site.urls),
]
