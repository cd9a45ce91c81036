"""The dashboard's charts label a scale only for data that is there."""

from oversight.charts import column_chart


def test_a_chart_without_values_shows_no_scale() -> None:
    fmt = "{:.0f} ms".format

    empty = column_chart("Latency", [("Mon", None), ("Tue", None)], fmt)
    zeros = column_chart("Cost", [("Mon", 0.0), ("Tue", 0.0)], fmt)
    some = column_chart("Latency", [("Mon", 120.0), ("Tue", None)], fmt)

    assert "no data" in empty and "max" not in empty
    assert "max" not in zeros and "no data" not in zeros
    assert "max 120 ms" in some
