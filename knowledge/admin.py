from django.contrib import admin

from .models import Article


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin[Article]):
    list_display = ["title", "is_active", "question_count", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["title", "body", "example_questions"]

    @admin.display(description="Example questions")
    def question_count(self, article: Article) -> int:
        return len(article.questions)
