"""Measure routing and the decision to hand over on labelled question sets."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from support_bot import evaluation
from support_bot.bot.retrieval import ArticleIndex

REPO = Path(settings.BASE_DIR)
DATA = REPO / ".." / "shared" / "data"


class Command(BaseCommand):
    help = (
        "Run labelled questions through retrieval and the pre-model decision; "
        "print routing accuracy, escalation precision and recall and a "
        "threshold sweep, and write a reliability plot. Writes nothing to the "
        "database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--bank",
            action="store_true",
            help="The demo knowledge base against BANKING77 held-out questions "
            "and CLINC150 questions a bank should hand over (the default).",
        )
        which.add_argument(
            "--clinc150",
            type=Path,
            metavar="PATH",
            help="A CLINC150 data_full.json-style file: train as articles, "
            "threshold from val + oos_val, report on test + oos_test.",
        )
        which.add_argument(
            "--banking77-test",
            type=Path,
            metavar="PATH",
            help="A BANKING77 test CSV (text,category) routed against all of "
            "--banking77-train as articles.",
        )
        parser.add_argument(
            "--banking77-train",
            type=Path,
            default=DATA / "banking77" / "train.csv",
        )
        parser.add_argument(
            "--clinc150-dir",
            type=Path,
            default=DATA / "clinc150",
            help="Where the bank set finds data_train_val.json and domains.json.",
        )
        parser.add_argument(
            "--threshold",
            type=float,
            help="Confidence threshold; default CONFIDENCE_THRESHOLD, or for "
            "--clinc150 the one that escalates 10%% of in-scope val questions.",
        )
        parser.add_argument(
            "--plot", type=Path, default=REPO / "var" / "calibration.png"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        labelled = self._load(options)
        if labelled.note:
            self.stdout.write(f"Note: {labelled.note}")
        index = ArticleIndex.build(labelled.docs)
        self.stdout.write(
            f"{labelled.name}: {len(labelled.docs)} articles, "
            f"{index.vector_count} vectors, softmax classifier "
            f"{'on' if index.has_classifier else 'off (too large)'}"
        )
        threshold = options["threshold"]
        if threshold is None and labelled.tune is not None:
            tuned = evaluation.run(index, labelled.tune)
            threshold = evaluation.threshold_for_in_scope_share(tuned)
            self.stdout.write(
                f"Threshold chosen on {len(labelled.tune)} validation questions "
                f"(10% of in-scope under it): {threshold:.3f}"
            )
        if threshold is None:
            threshold = float(settings.CONFIDENCE_THRESHOLD)
        outcomes = evaluation.run(index, labelled.report)
        self._report(labelled.name, outcomes, threshold, options["plot"])

    def _load(self, options: dict[str, Any]) -> evaluation.LabelledSet:
        try:
            if options["clinc150"] is not None:
                return evaluation.clinc150_set(options["clinc150"])
            if options["banking77_test"] is not None:
                return evaluation.banking77_set(
                    options["banking77_train"], options["banking77_test"]
                )
            return evaluation.bank_set(REPO, options["clinc150_dir"])
        except (OSError, KeyError, ValueError) as error:
            raise CommandError(f"Could not load the set: {error}") from error

    def _report(
        self, name: str, outcomes: evaluation.Outcomes, threshold: float, plot: Path
    ) -> None:
        result = evaluation.metrics(outcomes, threshold)
        self.stdout.write(
            f"{result.in_scope} questions to answer, {result.out_of_scope} to escalate"
        )
        self.stdout.write(evaluation.format_metrics(result))
        self.stdout.write(evaluation.format_sweep(evaluation.sweep(outcomes)))
        curve = evaluation.reliability(outcomes)
        try:
            evaluation.write_reliability_plot(plot, {name: curve})
        except ImportError as error:
            raise CommandError(
                "The reliability plot needs matplotlib: pip install -e '.[dev]'"
            ) from error
        self.stdout.write(f"Calibration error {curve.ece:.3f}; plot written to {plot}")
