"""The default world: deterministic ids, tokens and secrets for the demo and the tests."""

from __future__ import annotations

from .actions import comment_create, customer_create, inbound_message, record_outbound
from .core import DAY_MS, HOUR_MS, Sandbox
from .models import App, FbUser, IgAccount, Media, Page, Token

APP_ID = "880000000000001"
APP_SECRET = "sbx0meta0app0secret0000000000001"  # noqa: S105 - fixed sandbox credential
APP_NAME = "IGDM Platform (sandbox)"
IG_APP_ID = "990000000000001"
IG_APP_SECRET = "sbx0instagram0app0secret00000001"  # noqa: S105 - fixed sandbox credential
VERIFY_TOKEN = "sandbox-verify-token"  # noqa: S105 - fixed sandbox credential

FB_USER_ID = "10000000000000001"
FB_USER_TOKEN = "EAAGsbxUser10000000000000001"  # noqa: S105 - fixed sandbox credential
PAGE_ACME = "200000000000001"
PAGE_BELLA = "200000000000002"
PAGE_TOKENS = {PAGE_ACME: "EAAGsbxPage200000000000001", PAGE_BELLA: "EAAGsbxPage200000000000002"}
IG_ACME = "17841400000000001"
IG_BELLA = "17841400000000002"
IG_CREATOR = "17841400000000003"
IG_NOT_ELIGIBLE = "17841400000000004"
IG_NO_ACCESS = "17841400000000005"
IG_TOKENS = {
    IG_CREATOR: "IGAAsbxUser17841400000000003",
    IG_NOT_ELIGIBLE: "IGAAsbxUser17841400000000004",
    IG_NO_ACCESS: "IGAAsbxUser17841400000000005",
}
MEDIA_ACME_POST = "17900000000000001"
MEDIA_ACME_REEL = "17900000000000002"
MEDIA_BELLA_POST = "17900000000000003"
MEDIA_CREATOR_POST = "17900000000000004"

FB_SCOPES = [
    "pages_show_list",
    "pages_manage_metadata",
    "pages_read_engagement",
    "pages_messaging",
    "instagram_basic",
    "instagram_manage_messages",
    "instagram_manage_comments",
    "business_management",
]
IG_SCOPES = [
    "instagram_business_basic",
    "instagram_business_manage_messages",
    "instagram_business_manage_comments",
]
ALL_WEBHOOK_FIELDS = [
    "messages",
    "message_echoes",
    "message_edit",
    "message_reactions",
    "messaging_seen",
    "messaging_postbacks",
    "messaging_referral",
    "messaging_optins",
    "messaging_handover",
    "standby",
    "response_feedback",
    "comments",
    "live_comments",
    "mentions",
]


def _account(
    seq: int,
    ig_id: str,
    username: str,
    name: str,
    *,
    login: str,
    page_id: str | None = None,
    account_type: str = "Business",
    eligible: bool = True,
    message_access: bool = True,
) -> IgAccount:
    return IgAccount(
        id=ig_id,
        seq=seq,
        app_scoped_id=str(7_190_000_000_000_000 + seq),
        username=username,
        name=name,
        account_type=account_type,  # type: ignore[arg-type]
        login=login,  # type: ignore[arg-type]
        page_id=page_id,
        eligible=eligible,
        message_access=message_access,
        profile_picture_url=f"https://scontent.cdninstagram.com/sandbox/{username}.jpg",
    )


def seed_default_world(sb: Sandbox) -> None:
    """Replace the world with the default one. Takes the lock."""
    from .models import World

    with sb.lock:
        offset = sb.world.clock_offset_s
        sb.world = World(clock_offset_s=offset)
        sb.rates.clear()
        world = sb.world
        now = sb.now_ms()
        world.apps[APP_ID] = App(
            id=APP_ID,
            secret=APP_SECRET,
            name=APP_NAME,
            ig_app_id=IG_APP_ID,
            ig_app_secret=IG_APP_SECRET,
        )
        world.users[FB_USER_ID] = FbUser(
            id=FB_USER_ID, name="Dana Owner", page_ids=[PAGE_ACME, PAGE_BELLA]
        )
        world.pages[PAGE_ACME] = Page(
            id=PAGE_ACME, name="Acme Store", ig_account_id=IG_ACME, owner_user_id=FB_USER_ID
        )
        world.pages[PAGE_BELLA] = Page(
            id=PAGE_BELLA,
            name="Bella Boutique",
            category="Clothing Store",
            ig_account_id=IG_BELLA,
            owner_user_id=FB_USER_ID,
        )
        accounts = [
            _account(1, IG_ACME, "acme.store", "Acme Store", login="facebook", page_id=PAGE_ACME),
            _account(
                2,
                IG_BELLA,
                "bella.boutique",
                "Bella Boutique",
                login="facebook",
                page_id=PAGE_BELLA,
            ),
            _account(
                3,
                IG_CREATOR,
                "chloe.creates",
                "Chloe Creates",
                login="instagram",
                account_type="Media_Creator",
            ),
            _account(
                4, IG_NOT_ELIGIBLE, "fresh.start", "Fresh Start", login="instagram", eligible=False
            ),
            _account(
                5,
                IG_NO_ACCESS,
                "quiet.corner",
                "Quiet Corner",
                login="instagram",
                message_access=False,
            ),
        ]
        for account in accounts:
            world.accounts[account.id] = account
        sb.world.counters["account"] = len(accounts)

        targets = [PAGE_ACME, PAGE_BELLA, IG_ACME, IG_BELLA]
        world.tokens[FB_USER_TOKEN] = Token(
            token=FB_USER_TOKEN,
            kind="user_long",
            app_id=APP_ID,
            host="facebook",
            user_id=FB_USER_ID,
            scopes=list(FB_SCOPES),
            granular={scope: list(targets) for scope in FB_SCOPES},
            issued_ms=now - DAY_MS,
            expires_ms=now + 59 * DAY_MS,
            data_access_expires_ms=now + 89 * DAY_MS,
        )
        for page_id, token in PAGE_TOKENS.items():
            world.tokens[token] = Token(
                token=token,
                kind="page",
                app_id=APP_ID,
                host="facebook",
                user_id=FB_USER_ID,
                page_id=page_id,
                ig_id=world.pages[page_id].ig_account_id,
                scopes=list(FB_SCOPES),
                issued_ms=now - DAY_MS,
                expires_ms=0,
                data_access_expires_ms=now + 89 * DAY_MS,
                parent=FB_USER_TOKEN,
            )
        for ig_id, token in IG_TOKENS.items():
            world.tokens[token] = Token(
                token=token,
                kind="ig_long",
                app_id=APP_ID,
                host="instagram",
                ig_id=ig_id,
                scopes=list(IG_SCOPES),
                issued_ms=now - 2 * DAY_MS,
                expires_ms=now + 58 * DAY_MS,
                data_access_expires_ms=now + 88 * DAY_MS,
            )

        media = [
            (MEDIA_ACME_POST, IG_ACME, "Summer collection is here \u2600\ufe0f", "FEED", 5),
            (MEDIA_ACME_REEL, IG_ACME, "Behind the scenes", "REELS", 3),
            (MEDIA_BELLA_POST, IG_BELLA, "New arrivals", "FEED", 4),
            (MEDIA_CREATOR_POST, IG_CREATOR, "My latest piece", "FEED", 2),
        ]
        for media_id, ig_id, caption, product, days in media:
            world.media[media_id] = Media(
                id=media_id,
                ig_id=ig_id,
                caption=caption,
                media_type="VIDEO" if product == "REELS" else "IMAGE",
                media_product_type=product,
                media_url=f"https://scontent.cdninstagram.com/sandbox/{media_id}.jpg",
                permalink=f"https://www.instagram.com/p/sbx{media_id[-4:]}/",
                created_ms=now - days * DAY_MS,
            )
            world.accounts[ig_id].media_count += 1

        alice = customer_create(sb, username="alice", name="Alice Martin", follows=[IG_ACME])
        bob = customer_create(sb, username="bob", name="Bob Chen")
        carla = customer_create(sb, username="carla", name="Carla N\u00fa\u00f1ez")
        dmitri = customer_create(sb, username="dmitri", name="Dmitri S\u00f8ren")
        acme = world.accounts[IG_ACME]
        bella = world.accounts[IG_BELLA]
        creator = world.accounts[IG_CREATOR]
        inbound_message(
            sb, acme, alice, text="Hi! Do you ship to Lisbon?", at_ms=now - HOUR_MS, emit=False
        )
        inbound_message(
            sb, acme, bob, text="Is the blue tee back in stock?", at_ms=now - 2 * DAY_MS, emit=False
        )
        inbound_message(
            sb, acme, carla, text="Thanks for the help!", at_ms=now - 10 * DAY_MS, emit=False
        )
        inbound_message(sb, bella, alice, text="Hello Bella", at_ms=now - HOUR_MS // 2, emit=False)
        inbound_message(
            sb,
            creator,
            dmitri,
            text="Love your work \u2014 \u00bfcollab? \U0001f3a8",
            at_ms=now - 2 * HOUR_MS,
            emit=False,
        )
        inbound_message(
            sb,
            world.accounts[IG_NOT_ELIGIBLE],
            alice,
            text="Are you open?",
            at_ms=now - HOUR_MS,
            emit=False,
        )
        inbound_message(
            sb,
            world.accounts[IG_NO_ACCESS],
            bob,
            text="Hello?",
            at_ms=now - HOUR_MS,
            emit=False,
        )
        carla_conv = sb.conversation_for(acme, carla)
        record_outbound(
            sb,
            acme,
            carla_conv,
            app_id=None,
            kind="text",
            text="Anytime!",
            at_ms=now - 10 * DAY_MS + 60_000,
        )
        sb.world.events.clear()
        comment_create(
            sb, dmitri, MEDIA_ACME_POST, text="How much is this?", at_ms=now - HOUR_MS, emit=False
        )
        comment_create(
            sb, bob, MEDIA_ACME_POST, text="Still available?", at_ms=now - 8 * DAY_MS, emit=False
        )
        comment_create(
            sb,
            alice,
            MEDIA_CREATOR_POST,
            text="Gorgeous!",
            at_ms=now - 10 * 60_000,
            emit=False,
        )
        sb.mark_dirty()
