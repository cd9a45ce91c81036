from django.contrib import admin

from .models import Escalation


@admin.register(Escalation)
class EscalationAdmin(admin.ModelAdmin[Escalation]):
    list_display = ["conversation", "reason", "detail", "confidence", "created_at"]
    list_filter = ["reason"]
    readonly_fields = ["conversation", "reason", "detail", "confidence", "created_at"]
