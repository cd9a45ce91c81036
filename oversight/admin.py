from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import actions
from .models import Alert, ConversationRating, ReviewItem


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin[ReviewItem]):
    list_display = ["question_preview", "kind", "status", "created_at"]
    list_filter = ["status", "kind"]
    search_fields = ["question", "answer"]
    readonly_fields = [
        "kind",
        "conversation",
        "message_seq",
        "question_seq",
        "question",
        "answer",
        "created_at",
    ]
    actions = ["make_article", "make_guideline"]

    @admin.display(description="Question")
    def question_preview(self, item: ReviewItem) -> str:
        return item.question[:80] or "(no question)"

    @admin.action(description="Turn into a knowledge article")
    def make_article(self, request: HttpRequest, items: QuerySet[ReviewItem]) -> None:
        made = [actions.article_from_review(item) for item in _open(items)]
        self.message_user(
            request,
            f"{len(made)} inactive article(s) created: review and activate them "
            "under Knowledge > Articles.",
            messages.SUCCESS,
        )

    @admin.action(description="Turn into a guideline")
    def make_guideline(self, request: HttpRequest, items: QuerySet[ReviewItem]) -> None:
        made = [
            actions.guideline_from_review(item, request.user) for item in _open(items)
        ]
        self.message_user(
            request,
            f"{len(made)} guideline draft(s) created: edit and publish them under "
            "Knowledge > Guidelines.",
            messages.SUCCESS,
        )


def _open(items: QuerySet[ReviewItem]) -> list[ReviewItem]:
    # An item already turned into something is not turned again by a second
    # click on a stale page.
    return list(items.filter(status=ReviewItem.Status.OPEN))


@admin.register(ConversationRating)
class ConversationRatingAdmin(admin.ModelAdmin[ConversationRating]):
    list_display = ["conversation", "score", "created_at"]
    list_filter = ["score"]
    readonly_fields = ["conversation", "score", "comment", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin[Alert]):
    list_display = ["kind", "value", "baseline", "opened_at", "closed_at"]
    list_filter = ["kind"]
    readonly_fields = ["kind", "value", "baseline", "opened_at", "closed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
