"""Forms of the knowledge admin pages: guideline drafts, imports, trying the bot."""

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import MaxLengthValidator

from .guidelines import GuidelineEdit, pending_draft
from .models import Guideline


class GuidelineForm(forms.ModelForm[Guideline]):
    """Edits a guideline as a new draft version; the row itself is not touched.

    The fields belong to the version, so none is a model field here: saving
    goes through `guidelines.save_draft`, never through `form.save()`.
    """

    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One rule in plain language, e.g. “Never promise a refund.”",
    )
    kind = forms.ChoiceField(choices=Guideline.Kind.choices)
    order = forms.IntegerField(initial=0, help_text="Lower comes first.")
    active = forms.BooleanField(required=False, initial=True)

    class Meta:
        model = Guideline
        fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            return
        # Editing carries on from the unpublished draft, if there is one.
        version = pending_draft(self.instance) or self.instance.published
        if version is not None:
            self.initial.update(
                text=version.text,
                kind=version.kind,
                order=version.order,
                active=version.active,
            )

    def edit(self) -> GuidelineEdit:
        data = self.cleaned_data
        return GuidelineEdit(
            text=data["text"].strip(),
            kind=data["kind"],
            order=data["order"],
            active=data["active"],
        )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field taking several files, as Django's documentation shows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        single_clean = super().clean
        if isinstance(data, list | tuple):
            return [single_clean(d, initial) for d in data]
        return [single_clean(data, initial)]


class ImportForm(forms.Form):
    uploads = MultipleFileField(
        label="Files",
        help_text="One CSV or JSON file, or Markdown files (several, or the zip "
        "that “Export as Markdown” makes). At most 10 MB each.",
    )
    format = forms.ChoiceField(
        choices=[
            ("", "From the file name"),
            ("csv", "CSV"),
            ("json", "JSON"),
            ("markdown", "Markdown"),
        ],
        required=False,
    )


class TryBotForm(forms.Form):
    question = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    previous = forms.CharField(
        label="Previous question",
        required=False,
        help_text="Optional: what the customer asked before, for a follow-up "
        "such as “and how long does that take?”.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The widget's limit, read per form so a changed setting applies.
        limit = settings.MAX_MESSAGE_CHARS
        for field in self.fields.values():
            field.validators.append(MaxLengthValidator(limit))
