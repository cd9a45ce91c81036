from django.db import models


class Article(models.Model):
    """A help-centre article the bot may answer from and cite."""

    title = models.CharField(max_length=200)
    body = models.TextField()
    example_questions = models.TextField(
        blank=True,
        help_text="Questions this article answers, one a line. They teach "
        "retrieval how customers ask.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    @property
    def questions(self) -> list[str]:
        return [q.strip() for q in self.example_questions.splitlines() if q.strip()]
