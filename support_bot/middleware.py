"""What every HTTP request goes through before a view sees it."""

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, QueryDict
from django.utils.deprecation import MiddlewareMixin

NUL = "\x00"
# Methods that echo the request back (cross-site tracing) and that no page
# or client of ours uses.
ECHO_METHODS = frozenset({"TRACE", "TRACK"})
ALLOWED_METHODS = ["GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"]


class RefuseTrace(MiddlewareMixin):
    """Answers TRACE with 405 before any view: Django's views take any method
    they do not check, and a page answering TRACE with 200 is flagged by
    every security scan."""

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        if request.method in ECHO_METHODS:
            return HttpResponseNotAllowed(ALLOWED_METHODS)
        return None


class DropNulFromQuery(MiddlewareMixin):
    """Takes NUL out of the query's names and values.

    PostgreSQL text cannot hold NUL, so a filter built from one (an admin
    list's ?status=%00, say) fails in the database and the page with a 500.
    Nobody types one and no link of ours carries one; the widget drops it
    from messages for the same reason. The views then see what is left and
    answer as they do for any value they do not know.
    """

    def process_request(self, request: HttpRequest) -> None:
        if "%00" not in request.META.get("QUERY_STRING", ""):
            return
        pairs = [
            (name.replace(NUL, ""), value.replace(NUL, ""))
            for name, values in request.GET.lists()
            for value in values
        ]
        request.GET = QueryDict(urlencode(pairs))
