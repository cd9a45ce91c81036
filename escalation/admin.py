from django.contrib import admin

from .models import (
    AgentProfile,
    BusinessHours,
    CannedReply,
    Escalation,
    InternalNote,
    SupportSettings,
)


@admin.register(Escalation)
class EscalationAdmin(admin.ModelAdmin[Escalation]):
    list_display = [
        "conversation",
        "reason",
        "status",
        "confidence",
        "assigned_to",
        "claimed_by",
        "created_at",
        "claimed_at",
        "closed_at",
    ]
    list_filter = ["reason", "status"]
    readonly_fields = [
        "conversation",
        "reason",
        "detail",
        "confidence",
        "summary",
        "status",
        "assigned_to",
        "assigned_at",
        "claimed_by",
        "claimed_at",
        "closed_at",
        "routed_at",
        "routing_attempts",
        "created_at",
    ]


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin[AgentProfile]):
    list_display = ["__str__", "capacity", "consoles_open", "last_seen_at"]
    readonly_fields = ["consoles_open", "last_seen_at", "present_until"]


@admin.register(SupportSettings)
class SupportSettingsAdmin(admin.ModelAdmin[SupportSettings]):
    list_display = ["__str__", "claim_timeout_seconds"]

    def has_add_permission(self, request: object) -> bool:
        return not SupportSettings.objects.exists()


admin.site.register(BusinessHours)
admin.site.register(CannedReply)
admin.site.register(InternalNote)
