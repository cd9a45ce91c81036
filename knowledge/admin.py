"""Admin for articles, guidelines and the bot's settings.

The pages stay thin: guideline versions go through `knowledge.guidelines`,
article writes through `knowledge.actions` (which re-indexes), files through
`knowledge.importexport`.
"""

import logging
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Max, Q, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from conversations.replies import preview_answer
from support_bot.bot.engines import run_sync

from . import guidelines
from .actions import article_changed
from .forms import GuidelineForm, ImportForm, TryBotForm
from .importexport import (
    MAX_FILE_BYTES,
    KnowledgeFormatError,
    SourceFile,
    export_csv,
    export_json,
    export_markdown_zip,
    export_records,
    import_articles,
    read_files,
)
from .models import Article, BotSettings, Guideline, GuidelineVersion

logger = logging.getLogger(__name__)


def _download(data: bytes, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin[Article]):
    list_display = ["title", "is_active", "question_count", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["title", "body", "example_questions"]
    actions = ["export_as_csv", "export_as_json", "export_as_markdown"]

    @admin.display(description="Example questions")
    def question_count(self, article: Article) -> int:
        return len(article.questions)

    def save_model(
        self, request: HttpRequest, obj: Article, form: Any, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        article_changed()

    def delete_model(self, request: HttpRequest, obj: Article) -> None:
        super().delete_model(request, obj)
        article_changed()

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[Article]
    ) -> None:
        super().delete_queryset(request, queryset)
        article_changed()

    @admin.action(description="Export selected articles as CSV")
    def export_as_csv(
        self, request: HttpRequest, queryset: QuerySet[Article]
    ) -> HttpResponse:
        data = export_csv(export_records(queryset))
        return _download(data, "articles.csv", "text/csv; charset=utf-8")

    @admin.action(description="Export selected articles as JSON")
    def export_as_json(
        self, request: HttpRequest, queryset: QuerySet[Article]
    ) -> HttpResponse:
        return _download(
            export_json(export_records(queryset)), "articles.json", "application/json"
        )

    @admin.action(description="Export selected articles as Markdown (zip)")
    def export_as_markdown(
        self, request: HttpRequest, queryset: QuerySet[Article]
    ) -> HttpResponse:
        data = export_markdown_zip(export_records(queryset))
        return _download(data, "articles.zip", "application/zip")

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_view)
        return [
            path("import/", view, name="knowledge_article_import"),
            *super().get_urls(),
        ]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload files; "Check" shows what would change, "Import" does it."""
        if not (
            self.has_add_permission(request) and self.has_change_permission(request)
        ):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        summary = None
        if request.method == "POST" and form.is_valid():
            dry_run = "_import" not in request.POST
            try:
                summary = _import_uploads(form, dry_run)
            except KnowledgeFormatError as error:
                form.add_error(None, f"Nothing was imported. {error}")
            else:
                if not dry_run:
                    messages.success(
                        request,
                        f"Imported: {len(summary.created)} created, "
                        f"{len(summary.updated)} updated, "
                        f"{len(summary.unchanged)} unchanged.",
                    )
                    return redirect("admin:knowledge_article_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import articles",
            "form": form,
            "summary": summary,
        }
        return TemplateResponse(request, "admin/knowledge/article/import.html", context)


def _import_uploads(form: ImportForm, dry_run: bool) -> Any:
    uploads = form.cleaned_data["uploads"]
    too_big = next((u for u in uploads if (u.size or 0) > MAX_FILE_BYTES), None)
    if too_big is not None:
        # Refused before reading it into memory.
        raise KnowledgeFormatError(
            f"{too_big.name}: over the limit of {MAX_FILE_BYTES // 1024 // 1024} MB."
        )
    files = [SourceFile(u.name or "upload", u.read()) for u in uploads]
    records = read_files(files, form.cleaned_data["format"] or None)
    return import_articles(records, dry_run=dry_run)


@admin.register(Guideline)
class GuidelineAdmin(admin.ModelAdmin[Guideline]):
    """Saving stores a draft; the bot keeps the published text until Publish."""

    form = GuidelineForm
    list_display = ["__str__", "kind", "order", "active", "state", "updated_at"]
    list_filter = ["kind", "active"]

    list_select_related = ["published"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Guideline]:
        # The newest draft's id, so the list shows drafts without a query a row.
        drafts = Q(versions__status=GuidelineVersion.Status.DRAFT)
        return (
            super()
            .get_queryset(request)
            .annotate(latest_draft_id=Max("versions__id", filter=drafts))
        )

    @admin.display(description="State")
    def state(self, guideline: Guideline) -> str:
        latest_draft: int | None = getattr(guideline, "latest_draft_id", None)
        if guideline.published_id is None:
            return "Draft, never published"
        if latest_draft is not None and latest_draft > guideline.published_id:
            return "Draft waiting"
        return "Published"

    def save_model(
        self, request: HttpRequest, obj: Guideline, form: Any, change: bool
    ) -> None:
        if change and not form.has_changed():
            return
        guidelines.save_draft(obj, form.edit(), request.user)

    def response_post_save_add(
        self, request: HttpRequest, obj: Guideline
    ) -> HttpResponseRedirect:
        return self._to_preview(request, obj)

    def response_post_save_change(
        self, request: HttpRequest, obj: Guideline
    ) -> HttpResponseRedirect:
        return self._to_preview(request, obj)

    def _to_preview(self, request: HttpRequest, obj: Guideline) -> HttpResponseRedirect:
        if guidelines.pending_draft(obj) is not None:
            messages.info(request, "Draft saved. The bot uses it once you publish it.")
        return HttpResponseRedirect(
            reverse("admin:knowledge_guideline_preview", args=[obj.pk])
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        guideline = self.get_object(request, object_id)
        draft = guidelines.pending_draft(guideline) if guideline else None
        extra = {**(extra_context or {}), "pending_draft": draft}
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Any) -> Any:
            return self.admin_site.admin_view(view)

        return [
            path(
                "<path:object_id>/preview/",
                wrap(self.preview_view),
                name="knowledge_guideline_preview",
            ),
            path(
                "<path:object_id>/publish/<int:version_id>/",
                wrap(self.publish_view),
                name="knowledge_guideline_publish",
            ),
            path(
                "<path:object_id>/restore/<int:version_id>/",
                wrap(self.restore_view),
                name="knowledge_guideline_restore",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The waiting draft beside the published text, and the prompt it makes."""
        guideline = self._get_viewable(request, object_id)
        draft = guidelines.pending_draft(guideline)
        published = guideline.published
        context = {
            **self._context(request, guideline, "Preview"),
            "draft": draft,
            "published": published,
            "diff": guidelines.diff_lines(
                guidelines.snapshot_lines(published), guidelines.snapshot_lines(draft)
            )
            if draft
            else [],
            "prompt_now": guidelines.system_prompt(),
            "prompt_draft": guidelines.system_prompt(draft) if draft else "",
            "can_publish": self.has_change_permission(request, guideline),
        }
        return TemplateResponse(
            request, "admin/knowledge/guideline/preview.html", context
        )

    def history_view(
        self,
        request: HttpRequest,
        object_id: str,
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """Every version, newest first, each with a diff to the one before."""
        guideline = self._get_viewable(request, object_id)
        versions = list(guideline.versions.select_related("author").order_by("id"))
        rows = []
        previous: GuidelineVersion | None = None
        for version in versions:
            diff = guidelines.diff_lines(
                guidelines.snapshot_lines(previous), guidelines.snapshot_lines(version)
            )
            rows.append({"version": version, "diff": diff})
            previous = version
        context = {
            **self._context(request, guideline, "History"),
            "rows": rows[::-1],
            "can_restore": self.has_change_permission(request, guideline),
            **(extra_context or {}),
        }
        return TemplateResponse(
            request, "admin/knowledge/guideline/history.html", context
        )

    def publish_view(
        self, request: HttpRequest, object_id: str, version_id: int
    ) -> HttpResponseBase:
        if request.method != "POST":
            # Publishing changes what customers are told: never on a GET.
            return HttpResponseNotAllowed(["POST"])
        guideline, version = self._get_changeable(request, object_id, version_id)
        if version.status != GuidelineVersion.Status.DRAFT:
            messages.warning(request, "That version is already published.")
        else:
            guidelines.publish(version)
            self.log_change(request, guideline, f"Published version {version.pk}.")
            messages.success(request, "Published: the bot uses this text now.")
        return redirect("admin:knowledge_guideline_history", guideline.pk)

    def restore_view(
        self, request: HttpRequest, object_id: str, version_id: int
    ) -> HttpResponseBase:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        guideline, version = self._get_changeable(request, object_id, version_id)
        restored = guidelines.restore(version, request.user)
        self.log_change(
            request,
            guideline,
            f"Restored version {version.pk} as version {restored.pk}.",
        )
        messages.success(request, f"Version {version.pk} restored and published.")
        return redirect("admin:knowledge_guideline_history", guideline.pk)

    def _get_viewable(self, request: HttpRequest, object_id: str) -> Guideline:
        guideline = self.get_object(request, object_id)
        if guideline is None:
            raise Http404
        if not self.has_view_or_change_permission(request, guideline):
            raise PermissionDenied
        return guideline

    def _get_changeable(
        self, request: HttpRequest, object_id: str, version_id: int
    ) -> tuple[Guideline, GuidelineVersion]:
        guideline = self._get_viewable(request, object_id)
        if not self.has_change_permission(request, guideline):
            raise PermissionDenied
        version = get_object_or_404(guideline.versions, pk=version_id)
        return guideline, version

    def _context(
        self, request: HttpRequest, guideline: Guideline, title: str
    ) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": guideline,
            "title": f"{title}: {guideline}",
        }


@admin.register(BotSettings)
class BotSettingsAdmin(admin.ModelAdmin[BotSettings]):
    """One record; the list page goes straight to it."""

    fieldsets = [
        ("Who the bot is", {"fields": ["name", "persona", "greeting"]}),
        (
            "Model",
            {
                "fields": [
                    "model",
                    "temperature",
                    "max_answer_tokens",
                    "memory_token_budget",
                ]
            },
        ),
        ("When a person checks", {"fields": ["confidence_threshold", "review_mode"]}),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not BotSettings.objects.exists()

    def has_delete_permission(
        self, request: HttpRequest, obj: BotSettings | None = None
    ) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if BotSettings.objects.exists():
            return redirect("admin:knowledge_botsettings_change", 1)
        return redirect("admin:knowledge_botsettings_add")

    def add_view(
        self,
        request: HttpRequest,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Saved already (a second tab, a bookmark): the one record, not a
        # bare "403 Forbidden".
        if BotSettings.objects.exists():
            return redirect("admin:knowledge_botsettings_change", 1)
        return super().add_view(request, form_url, extra_context)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: BotSettings | None = None,
    ) -> HttpResponse:
        # There is only one record: no "Save and add another".
        context["show_save_and_add_another"] = False
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.try_bot_view)
        return [path("try/", view, name="knowledge_try_bot"), *super().get_urls()]

    def try_bot_view(self, request: HttpRequest) -> HttpResponse:
        """Ask the bot a question and see how it decides; nothing is stored."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = TryBotForm(request.POST or None)
        preview = None
        if request.method == "POST" and form.is_valid():
            preview = run_sync(
                preview_answer,
                form.cleaned_data["question"],
                form.cleaned_data["previous"] or None,
            )
            logger.info(
                "Bot tried in admin: %s",
                preview.decision,
                extra={"user_id": request.user.pk},
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Try the bot",
            "form": form,
            "preview": preview,
            "signals": sorted(preview.signals.items()) if preview else [],
        }
        return TemplateResponse(request, "admin/knowledge/try_bot.html", context)
