import cProfile, pstats, io, os
from collections import Counter
from typing import Any
from unittest import mock
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from messaging import outbox, ratelimit
from messaging.models import OutboundJob
from messaging.services import outbound
from messaging.services.outbound import OutboundContent, Sender
from tests.outbound.conftest import World, add_conversation
from datetime import timedelta


def test_profile(world: World, sandbox: Any) -> None:
    outbound.messaging_settings_update(tenant_id=world.tenant.pk, disclosure_mode="never")
    convs = [add_conversation(world.acme, f"70000000000{i:05d}", timedelta(minutes=1)) for i in range(1)]
    convs = [world.conversation("alice")]
    bot = Sender.automation("p")
    N = 60
    for i in range(N):
        outbound.message_send(conversation=convs[i % len(convs)], sender=bot, content=OutboundContent(kind="text", text=f"p {i}"))
    published: list[int] = []
    def collect(tenant_id, ids):
        published.extend(ids); return len(list(ids))
    with mock.patch.object(outbox, "_publish", side_effect=lambda t, ids: (published.extend(ids), len(list(ids)))[1]):
        outbox.pump(account_id=world.acme.pk)
        # warm
        for _ in range(5):
            ratelimit.reset(world.acme.pk)
            outbox.job_run(job_id=published.pop(0))
        prof = cProfile.Profile()
        n = 0
        with CaptureQueriesContext(connection) as ctx:
            prof.enable()
            while published and n < 40:
                ratelimit.reset(world.acme.pk)
                outbox.job_run(job_id=published.pop(0))
                n += 1
            prof.disable()
    print(f"\nSENDS {n} QUERIES {len(ctx.captured_queries)} per send {len(ctx.captured_queries)/n:.1f}")
    if os.environ.get("SHOWQ"):
        start = len(ctx.captured_queries) // n
        for q in ctx.captured_queries[-start * 2: -start]:
            print("  ", q["sql"][:220])
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s).sort_stats("cumulative")
    st.print_stats(45)
    print(s.getvalue()[:9000])
    st.dump_stats("/tmp/prof/send.prof")
    assert OutboundJob.objects.filter(status="sent").count() >= n
