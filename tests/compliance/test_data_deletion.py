"""Acceptance 1 and 2 (X2): Meta's data deletion callback.

Forged, tampered, wrongly signed or stale requests answer 400 and change nothing; a valid one
answers the confirmation code and a status URL; a repeat answers the same code without new
work; afterwards no row references the person's id, and each workspace's log says so once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django_scopes import scope

from accounts.audit import Action
from accounts.models import DataDeletionRequest, InstagramAccount, OnboardingAttempt, Tenant
from integrations.meta.signatures import make_signed_request
from tests.compliance.support import audit_actions, rows_containing
from tests.factories import InstagramAccountFactory
from tests.isolation.factories import MessageFactory

pytestmark = pytest.mark.django_db

URL = "/webhooks/meta/data-deletion"
PERSON = "10223344556677889"


def _signed(
    user_id: str = PERSON,
    secret: str | None = None,
    issued_at: int | None = None,
    **extra: Any,
) -> str:
    payload = {"user_id": user_id, "issued_at": issued_at or int(time.time()), **extra}
    return make_signed_request(payload, secret or settings.META_APP_SECRET)


def _post(client: Client, signed_request: str) -> Any:
    return client.post(URL, {"signed_request": signed_request})


@pytest.fixture
def connected(tenant: Tenant, other_tenant: Tenant) -> list[InstagramAccount]:
    """The person connected an account in each of two workspaces, one of them long ago."""
    ours = InstagramAccountFactory(
        tenant=tenant, meta_user_id=PERSON, access_token="EAAG-PERSON-TOKEN-1"
    )
    theirs = InstagramAccountFactory(
        tenant=other_tenant,
        meta_user_id=PERSON,
        access_token="EAAG-PERSON-TOKEN-2",
        status=InstagramAccount.Status.DISCONNECTED,
    )
    with scope(tenant=tenant):
        OnboardingAttempt.objects.create(
            tenant=tenant,
            login_kind="facebook",
            meta_user_id=PERSON,
            expires_at=ours.connected_at,
            candidates=[{"ig_user_id": ours.ig_user_id, "username": "picked"}],
        )
    MessageFactory(conversation__contact__account=ours, text="kept conversation")
    return [ours, theirs]  # type: ignore[list-item]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: _signed(secret="not-our-secret"), id="forged"),
        pytest.param(lambda: _signed()[:-3] + "AAA", id="tampered-payload"),
        pytest.param(lambda: "x" + _signed()[1:], id="tampered-signature"),
        pytest.param(lambda: _signed(algorithm="HMAC-SHA1"), id="wrong-algorithm"),
        pytest.param(lambda: _signed(issued_at=int(time.time()) - 3 * 86400), id="stale"),
        pytest.param(lambda: _signed(issued_at=int(time.time()) + 3600), id="from-the-future"),
        pytest.param(lambda: _signed(user_id=""), id="no-user"),
        pytest.param(lambda: _signed(user_id="10\u00b2"), id="superscript-user"),
        pytest.param(lambda: _signed(user_id="\u0661\u0660"), id="arabic-indic-user"),
        pytest.param(lambda: "", id="empty"),
        pytest.param(lambda: "not.a.signed.request", id="malformed"),
    ],
)
def test_an_untrustworthy_request_is_refused_without_side_effects(
    client: Client, connected: list[InstagramAccount], queued: list[Any], make: Callable[[], str]
) -> None:
    response = _post(client, make())
    assert response.status_code == 400
    assert not DataDeletionRequest.objects.exists()
    assert queued == []
    assert rows_containing(PERSON) != []


def test_a_valid_request_answers_a_code_and_a_working_status_url(
    client: Client,
    tenant: Tenant,
    other_tenant: Tenant,
    connected: list[InstagramAccount],
    run_queued: Callable[[], list[str]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, _signed())
    assert response.status_code == 200
    body = response.json()
    code = body["confirmation_code"]
    assert len(code) >= 32  # 192 random bits, base64url
    assert body["url"] == f"{settings.SITE_URL.rstrip('/')}/data-deletion/{code}/"
    status_path = body["url"].removeprefix(settings.SITE_URL.rstrip("/"))

    page = client.get(status_path)
    assert page.status_code == 200
    assert code in page.content.decode()
    assert PERSON not in page.content.decode()

    # Meta retries: the same code, no second request, no second erasure queued.
    with django_capture_on_commit_callbacks(execute=True):
        again = _post(client, _signed(issued_at=int(time.time()) - 5))
    assert again.json()["confirmation_code"] == code
    assert DataDeletionRequest.objects.count() == 1

    assert run_queued() == ["accounts.process_data_deletion"]
    request = DataDeletionRequest.objects.get()
    assert request.status == DataDeletionRequest.Status.DONE
    assert request.progress["workspaces"] == 2
    # Nothing references the person any more: ids, tokens, logins.
    assert rows_containing(PERSON, "EAAG-PERSON-TOKEN") == []
    for account in connected:
        account.refresh_from_db()
        assert account.status == InstagramAccount.Status.DISCONNECTED
        assert account.access_token == ""
    # The workspace's conversations stay theirs.
    assert rows_containing("kept conversation") != []
    assert len(audit_actions(tenant, Action.DATA_DELETION_PROCESSED)) == 1
    assert len(audit_actions(other_tenant, Action.DATA_DELETION_PROCESSED)) == 1

    done = client.get(status_path).content.decode()
    assert "Completed" in done
    for private in (tenant.name, other_tenant.name, connected[0].username, PERSON):
        assert private not in done


def test_the_instagram_app_secret_is_accepted_and_an_instagram_login_account_is_anonymised(
    client: Client,
    tenant: Tenant,
    run_queued: Callable[[], list[str]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    account = InstagramAccountFactory(
        tenant=tenant,
        ig_user_id="17841499999999999",
        username="creator_person",
        login_kind=InstagramAccount.LoginKind.INSTAGRAM,
    )
    signed = _signed(user_id=account.ig_user_id, secret=settings.META_INSTAGRAM_APP_SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        assert _post(client, signed).status_code == 200
    run_queued()
    assert DataDeletionRequest.objects.get().source == "instagram"
    assert rows_containing("17841499999999999", "creator_person") == []


def test_status_codes_are_unguessable_and_reveal_nothing_else(client: Client) -> None:
    assert client.get("/data-deletion/not-a-code/").status_code == 404
    assert client.get("/data-deletion/" + "A" * 32 + "/").status_code == 404


def test_a_request_for_a_person_we_do_not_know_completes_with_nothing_to_erase(
    client: Client, run_queued: Callable[[], list[str]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert _post(client, _signed(user_id="999")).status_code == 200
    run_queued()
    request = DataDeletionRequest.objects.get()
    assert request.status == DataDeletionRequest.Status.DONE
    assert request.subject == ""
