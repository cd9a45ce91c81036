import json
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from . import retention
from .models import Conversation, Feedback, Message, Visitor


def _selected_visitors(queryset: QuerySet[Any]) -> QuerySet[Visitor]:
    """The visitors selected, or behind the conversations selected."""
    if queryset.model is Conversation:
        return retention.visitors_of(queryset)
    return Visitor.objects.filter(pk__in=queryset.values("pk"))


@admin.action(description="Export the visitors' data (JSON)", permissions=["view"])
def export_visitor_data(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> HttpResponse:
    exported = [
        retention.export_visitor(pk)
        for pk in _selected_visitors(queryset).values_list("pk", flat=True)
    ]
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = HttpResponse(
        json.dumps({"visitors": exported}, cls=DjangoJSONEncoder, indent=2),
        content_type="application/json",
    )
    response["Content-Disposition"] = (
        f'attachment; filename="visitor-export-{stamp}.json"'
    )
    return response


@admin.action(
    description="Erase the visitors and everything of theirs", permissions=["delete"]
)
def erase_visitors(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> TemplateResponse | None:
    visitors = _selected_visitors(queryset).annotate(
        conversation_count=Count("conversations")
    )
    if request.POST.get("post") != "yes":
        return TemplateResponse(
            request,
            "admin/conversations/erase_visitors.html",
            {
                **modeladmin.admin_site.each_context(request),
                "title": "Erase visitors",
                "opts": modeladmin.model._meta,
                "visitors": visitors,
                "queryset": queryset,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )
    erased = [
        retention.erase_visitor(pk) for pk in visitors.values_list("pk", flat=True)
    ]
    modeladmin.message_user(
        request,
        f"Erased {len(erased)} visitors, "
        f"{sum(e.conversations for e in erased)} conversations and "
        f"{sum(e.messages for e in erased)} messages.",
    )
    # None: back to the list, where the erased rows are gone.
    return None


class MessageInline(admin.TabularInline[Message, Conversation]):
    model = Message
    fields = ("seq", "role", "text", "metadata", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["seq"]

    def has_add_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = ["id", "status", "last_seq", "created_at", "updated_at"]
    list_filter = ["status"]
    readonly_fields = [
        "visitor",
        "status",
        "last_seq",
        "summary",
        "summary_until_seq",
        "memory_tokens",
    ]
    inlines = [MessageInline]
    actions = [export_visitor_data, erase_visitors]


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin[Feedback]):
    list_display = ["message", "rating", "created_at"]
    list_filter = ["rating"]


@admin.register(Visitor)
class VisitorAdmin(admin.ModelAdmin[Visitor]):
    # No email column: an admin answering a request searches for the exact
    # address the person gave, and the list does not show everyone's.
    list_display = ["__str__", "id", "created_at", "last_seen_at"]
    search_fields = ["=email", "=id"]
    fields = ["id", "email", "created_at", "last_seen_at"]
    readonly_fields = ["id", "email", "created_at", "last_seen_at"]
    actions = [export_visitor_data, erase_visitors]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
