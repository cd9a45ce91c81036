from django.contrib import admin

from .models import Conversation, Feedback, Message


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


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin[Feedback]):
    list_display = ["message", "rating", "created_at"]
    list_filter = ["rating"]
