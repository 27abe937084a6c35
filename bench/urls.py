"""The product's URLs plus a bare view, the baseline the webhook figures are compared with."""

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as product_urlpatterns


@csrf_exempt
def bare(request: HttpRequest) -> HttpResponse:
    """The cheapest Django response: the full middleware stack, no database, no body parsing."""
    return HttpResponse(b"OK", content_type="text/plain")


urlpatterns: list[URLPattern | URLResolver] = [path("bench/bare", bare, name="bench-bare")]
urlpatterns += product_urlpatterns  # type: ignore[arg-type]
