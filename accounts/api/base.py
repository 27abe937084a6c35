"""The base of every partner API view: the key's tenant scope is open while the view runs."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from django_scopes import scope
from rest_framework import exceptions, generics, views, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import ApiKey, Tenant
from config.idempotency import IdempotentPostMixin


class TenantScopedMixin:
    """Opens the tenant scope after authentication and closes it once the response is final.

    Subclasses declare ``required_scopes``: a list, or a dict from HTTP method (or ``"*"``) to
    a list. A view that declares none refuses every request.
    """

    required_scopes: list[str] | dict[str, list[str]] | None = None
    _scope_stack: ExitStack | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "initial" in cls.__dict__ or "finalize_response" in cls.__dict__:
            raise TypeError(f"{cls.__name__} may not override how the tenant scope is opened.")

    @property
    def api_key(self) -> ApiKey:
        api_key = self.request.auth  # type: ignore[attr-defined]
        if not isinstance(api_key, ApiKey):
            raise exceptions.NotAuthenticated()
        return api_key

    @property
    def tenant(self) -> Tenant:
        return self.api_key.tenant

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        api_key = request.auth
        if isinstance(api_key, ApiKey):
            self._scope_stack = ExitStack()
            self._scope_stack.enter_context(scope(tenant=api_key.tenant_id))

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        try:
            return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        finally:
            if self._scope_stack is not None:
                self._scope_stack.close()
                self._scope_stack = None


# Every partner API view: the key's tenant scope, and Idempotency-Key on POST.


class TenantAPIView(IdempotentPostMixin, TenantScopedMixin, views.APIView):
    pass


class TenantGenericAPIView(  # type: ignore[type-arg]
    IdempotentPostMixin, TenantScopedMixin, generics.GenericAPIView
):
    pass


class TenantGenericViewSet(  # type: ignore[type-arg]
    IdempotentPostMixin, TenantScopedMixin, viewsets.GenericViewSet
):
    pass
