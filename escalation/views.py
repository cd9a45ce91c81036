from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .actions import is_agent
from .models import CannedReply


@login_required(login_url="/admin/login/")
def console(request: HttpRequest) -> HttpResponse:
    """The agent console; everything live happens over /ws/agent/."""
    if not is_agent(request.user):
        raise PermissionDenied("The console is for support agents.")
    canned = list(CannedReply.objects.values("title", "text"))
    return render(request, "agent/console.html", {"canned_replies": canned})
