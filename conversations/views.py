from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static


def demo(request: HttpRequest) -> HttpResponse:
    """A sample site with the widget installed, as a site owner would."""
    widget_src = request.build_absolute_uri(static("widget/widget.js"))
    return render(request, "demo.html", {"widget_src": widget_src})
