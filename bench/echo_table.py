"""The one table the insert baseline writes to, owned by the benchmark.

It belongs to no installed app and has no migration: `ensure_table` creates it
in the benchmark database, so the product's schema never learns of it.
Import this module only after Django is set up.
"""

from django.db import connection, models


class EchoRow(models.Model):
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    # Declared, since the type checker adds managers only to installed apps.
    objects: "models.Manager[EchoRow]" = models.Manager()

    class Meta:
        app_label = "bench"
        db_table = "bench_echo_row"
        managed = False

    def __str__(self) -> str:
        return f"echo row {self.pk}"


def ensure_table() -> None:
    if EchoRow._meta.db_table not in connection.introspection.table_names():
        with connection.schema_editor() as editor:
            editor.create_model(EchoRow)
