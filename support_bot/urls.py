from django.contrib import admin
from django.urls import path

from conversations import views

urlpatterns = [
    path("", views.demo, name="demo"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
