"""Reliability row F5: coverage-guided fuzzing (atheris, libFuzzer) of the pure Meta parsers.

Every input goes to one target, chosen by its first byte; the rest of the input is the target's:

- ``webhook``: raw delivery bytes, JSON-decoded and parsed by ``parse_webhook_body``. The parser
  is total: any exception is a crash. Every event must be well formed (typed ids, a dedupe key,
  an aware UTC timestamp whenever ``timestamp_ms`` is set) and re-parsing a JSON round trip of
  the payload must give the same dedupe keys.
- ``signed_request``: an arbitrary string (lone surrogates included) to ``parse_signed_request``;
  only ``SignedRequestError`` with one of its documented reasons may be raised.
- ``signed_payload``: arbitrary payload bytes in a correctly signed ``signed_request``: accepted
  exactly when they are a JSON object whose ``algorithm`` is HMAC-SHA256, never refused as
  ``bad_signature``.
- ``hub_signature``: ``<header>\\n<body>`` to ``verify_hub_signature``: a bool, true exactly for
  ``sha256=`` and the hex HMAC of the body under a configured secret (hex case and surrounding
  whitespace aside); the right signature of any body always verifies.
- ``storage_text``: arbitrary text and JSON through ``clean_text`` and ``clean_json``, the
  sanitising applied before storage: never raises, the result is always storable by PostgreSQL
  (no NUL, no lone surrogate), cleaning twice changes nothing, ``max_length`` is honoured.

Half of the mutations are structure-aware: they decode an input's JSON and change its values
(see ``mutate``); the other half are libFuzzer's byte mutations, guided by a dictionary of the
field names the parsers look for.

The seed corpus is rebuilt on every run from the real Meta webhook fixtures
(``tests/fixtures/meta/*.json``) into ``var/fuzz/seeds/``; inputs that reach new code are kept in
``var/fuzz/corpus/`` (or ``--corpus``), so a later run starts where the last one stopped. A
crashing or hanging input (over ``--timeout`` seconds) is saved in ``var/fuzz/crashes/`` and the
run exits 1::

    .venv/bin/python -m bench.fuzz_parser [--seconds 3600] [--corpus DIR] [--timeout 5]
    .venv/bin/python -m bench.fuzz_parser --replay var/fuzz/crashes/crash-<sha1>
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import importlib
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "meta"
FUZZ_DIR = ROOT / "var" / "fuzz"
SEEDS = FUZZ_DIR / "seeds"
CORPUS = FUZZ_DIR / "corpus"
CRASHES = FUZZ_DIR / "crashes"
DICTIONARY = FUZZ_DIR / "meta.dict"

SECRET = "fuzz-meta-app-secret"  # noqa: S105 (signs fuzz inputs only)
OTHER_SECRET = "fuzz-instagram-app-secret"  # noqa: S105
UNCONFIGURED_SECRET = "fuzz-unknown-secret"  # noqa: S105
SECRETS = (SECRET, OTHER_SECRET)
# SignedRequestError's documented reasons.
SIGNED_REQUEST_REASONS = frozenset(
    {
        "malformed",
        "bad_encoding",
        "bad_payload",
        "unsupported_algorithm",
        "bad_signature",
        "no_secret",
    }
)
MAX_LEN = 8192


class PropertyViolation(AssertionError):
    """A target returned, but with a result its contract rules out."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise PropertyViolation(message)


# ---------------------------------------------------------------------------------------------
# Targets. Parsers are imported inside each check, by module, so the fuzzing process can load
# them under instrumentation first.


def check_webhook(body: bytes) -> None:
    """Raw delivery bytes: total parse, well-formed events, dedupe keys a function of content."""
    from integrations.meta import webhooks

    batch = webhooks.parse_webhook_body(body)
    _check_batch(batch)
    try:
        # Without ensure_ascii, so two adjacent surrogate code points stay two (escaped, the
        # decoder would join them into one character: other content, rightly other keys).
        # The reference is decoded as the parser decodes (strict UTF-8, no NaN, bounded depth).
        fresh = json.loads(json.dumps(webhooks.decode_webhook_body(body), ensure_ascii=False))
    except (ValueError, RecursionError):  # UndecodableBody is a ValueError
        return
    again = webhooks.parse_webhook(fresh)
    _check(
        [e.dedupe_key for e in batch] == [e.dedupe_key for e in again],
        "dedupe keys changed across a JSON round trip of the payload",
    )


def _check_batch(batch: Any) -> None:
    from integrations.meta import webhooks

    _check(isinstance(batch, webhooks.WebhookBatch), f"not a WebhookBatch: {type(batch)}")
    _check(batch.object is None or isinstance(batch.object, str), "object is not a string")
    for event in batch:
        _check(isinstance(event, webhooks.WebhookEvent), f"not a WebhookEvent: {type(event)}")
        _check(isinstance(event.dedupe_key, str) and bool(event.dedupe_key), "empty dedupe key")
        for name in ("entry_id", "business_id", "customer_id", "sender_id", "recipient_id", "mid"):
            value = getattr(event, name)
            _check(value is None or isinstance(value, str), f"{name} is {type(value)}")
        moment = event.timestamp
        if event.timestamp_ms is not None:
            _check(event.timestamp_ms > 0, "non-positive timestamp_ms")
            _check(
                moment is not None and moment.utcoffset() is not None,
                f"timestamp_ms {event.timestamp_ms} has no aware timestamp",
            )
        _ = (event.is_standby, event.is_test)
        if isinstance(event, webhooks.MessageEvent):
            _check(event.text is None or isinstance(event.text, str), "text is not a string")
            _ = event.display_attachments
        referral = getattr(event, "referral", None)
        if referral is not None:
            _ = (referral.is_ad, referral.is_link)
        if isinstance(event, webhooks.ReactionEvent):
            _ = event.is_removal
        if isinstance(event, webhooks.UnknownEvent):
            _check(isinstance(event.reason, str) and bool(event.reason), "unknown without reason")
    _check(len(batch.unknown) <= len(batch), "more unknown events than events")
    for event in batch.for_business(""):
        _check(event.business_id == "", "for_business returned another account's event")


def check_signed_request(data: bytes) -> None:
    """An arbitrary string: only ``SignedRequestError`` with a documented reason."""
    from integrations.meta import signatures

    text = data.decode("utf-8", "surrogateescape")
    secrets: str | tuple[str, ...] = (SECRETS, SECRET, ("", ""))[len(data) % 3]
    try:
        payload = signatures.parse_signed_request(text, secrets)
    except signatures.SignedRequestError as exc:
        _check(exc.reason in SIGNED_REQUEST_REASONS, f"undocumented reason {exc.reason!r}")
        _check((exc.reason == "no_secret") == (secrets == ("", "")), "no_secret misreported")
        return
    _check(secrets != ("", ""), "accepted without a secret")
    _check(isinstance(payload, dict), "an accepted signed_request gave no object")
    _check(_algorithm_ok(payload), "accepted without the HMAC-SHA256 algorithm")


def check_signed_payload(data: bytes) -> None:
    """Arbitrary payload bytes, correctly signed: accepted exactly when the payload is valid."""
    from integrations.meta import signatures

    encoded = _b64url(data)
    signature = hmac.new(SECRET.encode(), encoded.encode("ascii"), hashlib.sha256).digest()
    request = f"{_b64url(signature)}.{encoded}"
    try:
        expected = json.loads(data)
    except (ValueError, RecursionError):
        expected = None
    valid = isinstance(expected, dict) and _algorithm_ok(expected)
    try:
        payload = signatures.parse_signed_request(request, SECRETS)
    except signatures.SignedRequestError as exc:
        _check(exc.reason != "bad_signature", "a correct signature was refused")
        _check(not valid, f"a valid payload was refused ({exc.reason})")
        return
    _check(valid, "an invalid payload was accepted")
    _check(isinstance(payload, dict), "an accepted signed_request gave no object")


def check_hub_signature(data: bytes) -> None:
    """``<header>\\n<body>``: true exactly for the body's ``sha256=`` HMAC under a secret."""
    from integrations.meta import signatures

    head, _, body = data.partition(b"\n")
    header = head.decode("utf-8", "surrogateescape")
    digests = {hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in SECRETS}
    stripped = header.strip()
    expected = stripped.startswith("sha256=") and stripped[7:].lower() in digests
    result = signatures.verify_hub_signature(body, header, SECRETS)
    _check(isinstance(result, bool), f"verify_hub_signature returned {type(result)}")
    _check(result == expected, f"header {header[:80]!r} verified as {result}")
    _check(not signatures.verify_hub_signature(body, header, ["", ""]), "verified without secret")
    right = signatures.sign_hub_body(body, OTHER_SECRET)
    _check(signatures.verify_hub_signature(body, right, SECRETS), "the right signature failed")
    shouted = f" sha256={right[7:].upper()}\t"
    _check(signatures.verify_hub_signature(body, shouted, SECRETS), "upper-case hex was refused")
    wrong = signatures.sign_hub_body(body, UNCONFIGURED_SECRET)
    _check(not signatures.verify_hub_signature(body, wrong, SECRETS), "another secret verified")


def check_storage_text(data: bytes) -> None:
    """Sanitising before storage: always storable, idempotent, ``max_length`` honoured."""
    from config import input_guard
    from messaging.services import common

    text = data.decode("utf-8", "surrogateescape")
    cleaned = common.clean_text(text)
    _check(not input_guard.contains_unstorable(cleaned), "clean_text left unstorable text")
    _check(common.clean_text(cleaned) == cleaned, "clean_text is not idempotent")
    limit = data[0] if data else 0
    short = common.clean_text(text, max_length=limit)
    _check(short == cleaned[:limit], f"clean_text(max_length={limit}) differs from a cut")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return
    try:
        cleaned_value = common.clean_json(value)
    except RecursionError:
        return  # deeper than the interpreter's limit: refused before this, at decoding
    _check(not input_guard.contains_unstorable(cleaned_value), "clean_json left unstorable text")
    _check(
        json.dumps(common.clean_json(cleaned_value)) == json.dumps(cleaned_value),
        "clean_json is not idempotent",
    )


def _algorithm_ok(payload: dict[str, Any]) -> bool:
    algorithm = payload.get("algorithm")
    return isinstance(algorithm, str) and algorithm.upper() == "HMAC-SHA256"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Target:
    name: str
    check: Callable[[bytes], None]


TARGETS = (
    Target("webhook", check_webhook),
    Target("signed_request", check_signed_request),
    Target("signed_payload", check_signed_payload),
    Target("hub_signature", check_hub_signature),
    Target("storage_text", check_storage_text),
)
TARGET_TAG = {target.name: bytes([index]) for index, target in enumerate(TARGETS)}


def one_input(data: bytes) -> None:
    """libFuzzer's entry point: the first byte picks the target, the rest is its input."""
    if data:
        TARGETS[data[0] % len(TARGETS)].check(data[1:])


def prepare() -> None:
    """Configure Django (the storage sanitisers live in an app); no database is opened."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()


# ---------------------------------------------------------------------------------------------
# Seeds and dictionary


def seeds() -> Iterator[tuple[str, bytes]]:
    """(file name, input) for every target, built from the Meta webhook fixtures."""
    from integrations.meta import signatures

    for path in sorted(FIXTURES.glob("*.json")):
        raw = path.read_bytes()
        payload = json.loads(raw)
        stem = path.stem
        yield f"webhook-{stem}", TARGET_TAG["webhook"] + raw
        signed = signatures.make_signed_request(payload, SECRET)
        yield f"signed_request-{stem}", TARGET_TAG["signed_request"] + signed.encode("ascii")
        with_algorithm = {"algorithm": "HMAC-SHA256", **payload}
        yield (
            f"signed_payload-{stem}",
            TARGET_TAG["signed_payload"] + signatures.meta_json_bytes(with_algorithm),
        )
        header = signatures.sign_hub_body(raw, SECRET).encode("ascii")
        yield f"hub_signature-{stem}", TARGET_TAG["hub_signature"] + header + b"\n" + raw
        yield f"storage_text-{stem}", TARGET_TAG["storage_text"] + raw
    deletion = {"user_id": "6543210987654321", "issued_at": 1718000000}
    body = b'{"object":"instagram","entry":[]}'
    upper = signatures.sign_hub_body(body, SECRET)[7:].upper()
    extra = {
        "signed_request-deletion": signatures.make_signed_request(deletion, OTHER_SECRET).encode(),
        "signed_request-tampered": signatures.make_signed_request(deletion, "x").encode(),
        "signed_payload-sha1": b'{"algorithm":"HMAC-SHA1","user_id":"1"}',
        "hub_signature-upper": f" sha256={upper}\t\n".encode() + body,
        "hub_signature-sha1": b"sha1=" + b"0" * 40 + b"\n" + body,
        "storage_text-nul": b'{"text":"a\\u0000b","k\\u0000":["\\ud800","\\udfff\\ud83d"]}',
        "storage_text-raw": b"a\x00b\xed\xa0\x80c\xff",
    }
    for name, data in extra.items():
        yield name, TARGET_TAG[name.split("-", 1)[0]] + data


def write_seeds(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, data in seeds():
        _write_atomic(directory / name, data)
        count += 1
    return count


# Field names and values the parsers branch on, so mutations can insert them whole.
DICTIONARY_TOKENS = (
    '"object"', '"instagram"', '"entry"', '"id"', '"time"', '"messaging"', '"standby"',
    '"changes"', '"field"', '"value"', '"sender"', '"recipient"', '"timestamp"', '"message"',
    '"mid"', '"text"', '"attachments"', '"attachment"', '"type"', '"payload"', '"url"',
    '"reply_to"', '"story"', '"quick_reply"', '"referral"', '"is_echo"', '"is_self"',
    '"is_deleted"', '"is_unsupported"', '"message_edit"', '"num_edit"', '"reaction"', '"action"',
    '"unreact"', '"emoji"', '"read"', '"watermark"', '"postback"', '"title"',
    '"pass_thread_control"', '"take_thread_control"', '"request_thread_control"',
    '"release_thread_control"', '"app_roles"', '"comments"', '"live_comments"', '"mentions"',
    '"from"', '"media"', '"comment_id"', '"parent_id"', '"media_id"', '"event_type"', '"optin"',
    '"ads_context_data"', '"product"', '"ig_post"', '"ig_reel"', '"reel"', '"share"',
    '"story_mention"', '"algorithm"', '"HMAC-SHA256"', '"user_id"', '"issued_at"', "sha256=",
    "\\u0000", "\\ud800", "\\udc00", "true", "false", "null", "1e400", "-0", "\\/",
)  # fmt: skip


def write_dictionary(path: Path) -> None:
    lines = [f'"{_dictionary_escape(token)}"' for token in DICTIONARY_TOKENS]
    _write_atomic(path, ("\n".join(lines) + "\n").encode("ascii"))


def _dictionary_escape(token: str) -> str:
    out = []
    for byte in token.encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02X}")
    return "".join(out)


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(data)
    partial.replace(path)


# ---------------------------------------------------------------------------------------------
# Structure-aware mutation. Byte mutations rarely keep a delivery valid JSON, and coverage cannot
# tell "3" from "--3" in a branch already taken; half of the mutations therefore decode the
# JSON of an input, change one to three of its values (edge-case numbers and strings, deleted,
# copied, wrapped or retyped values, added fields) and encode it again.

JSON_TARGETS = frozenset({"webhook", "signed_payload", "storage_text", "hub_signature"})
# Digits of other scripts and forms (decimal, superscript, circled, full-width, mathematical).
_ODD_DIGITS = "\u0660\u0661\u06f1\u00b2\u00b3\u00b9\u2070\u2080\u2460\U0001d7d9\uff11"
_SIGNS = ("", "", "", "-", "+", "--", "-+", " ", "0")
_SUFFIXES = ("", "", "", ".0", ".5", "e3", "E-2", "_0", " ", "\n", "\x00", "x")
_LARGE_NUMBERS = (
    2**31, 2**53 + 1, 2**63, 10**12 - 1, 10**12, 253_402_300_799_999, 253_402_300_800_000,
    10**40, -(10**12), 1e12 + 0.5, 1e308, -0.0, 0.1,
)  # fmt: skip
_ODD_STRINGS = ("", " ", "\x00", "\ud800", "\udfff", "\ufeff", "\u202e", "\u00e9", "a" * 300)
_FIELD_NAMES = tuple(token.strip('"') for token in DICTIONARY_TOKENS if token.startswith('"'))


def _number_text(rng: random.Random) -> str:
    digits = "".join(
        rng.choice(_ODD_DIGITS) if rng.random() < 0.1 else rng.choice("0123456789")
        for _ in range(rng.randint(1, 18))
    )
    return rng.choice(_SIGNS) + digits + rng.choice(_SUFFIXES)


def _leaf(rng: random.Random) -> Any:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.choice((None, True, False, 0, 1, -1, [], {}))
    if kind == 1:
        return rng.choice(_LARGE_NUMBERS)
    if kind == 2:
        return rng.randint(-(10**14), 10**14)
    if kind in (3, 4):
        return _number_text(rng)
    if kind == 5:
        return rng.choice(_FIELD_NAMES)
    if kind == 6:
        return rng.choice(_ODD_STRINGS)
    return {"id": _number_text(rng)}


def _slots(value: Any) -> list[tuple[Any, Any]]:
    """(container, key) for every value inside ``value``, breadth first, at most 2,000."""
    slots: list[tuple[Any, Any]] = []
    queue = [value]
    while queue and len(slots) < 2000:
        node = queue.pop(0)
        keys = list(node) if isinstance(node, dict) else range(len(node))
        for key in keys:
            slots.append((node, key))
            if isinstance(node[key], dict | list):
                queue.append(node[key])
    return slots


def _mutate_value(
    value: Any, rng: random.Random, byte_mutate: Callable[[bytes, int], bytes]
) -> Any:
    if not isinstance(value, dict | list):
        return _leaf(rng)
    for _ in range(rng.randint(1, 3)):
        slots = _slots(value)
        if not slots:
            return _leaf(rng)
        node, key = rng.choice(slots)
        current = node[key]
        operation = rng.randrange(7)
        if operation == 0:
            node[key] = _leaf(rng)
        elif operation == 1 and isinstance(current, str):
            raw = current.encode("utf-8", "surrogatepass")
            node[key] = byte_mutate(raw, len(raw) + 16).decode("utf-8", "surrogateescape")
        elif operation == 1 and isinstance(current, int | float) and not isinstance(current, bool):
            node[key] = rng.choice((str(current), current * 1000, -current, current + 1))
        elif operation == 2:
            del node[key]
        elif operation == 3:
            other, other_key = rng.choice(slots)
            node[key] = copy.deepcopy(other[other_key])
        elif operation == 4:
            node[key] = rng.choice(([current], {"id": current}))
        elif operation == 5 and isinstance(node, dict):
            other, other_key = rng.choice(slots)
            node[rng.choice(_FIELD_NAMES)] = rng.choice(
                (_leaf(rng), copy.deepcopy(other[other_key]))
            )
        else:
            node[key] = _leaf(rng)
    return value


def _dump(value: Any, rng: random.Random) -> bytes:
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5, separators=(",", ":"))
    if rng.random() < 0.3:
        text = text.replace("/", "\\/")  # as Meta escapes slashes
    return text.encode("utf-8", "surrogatepass")


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's custom mutator: JSON-aware half of the time, byte-level otherwise."""
    import atheris

    rng = random.Random(seed)
    if len(data) > 1 and rng.random() < 0.5:
        target = TARGETS[data[0] % len(TARGETS)].name
        try:
            out = _mutate_input(target, data[1:], rng, atheris.Mutate)
        except (ValueError, RecursionError):
            out = None  # not JSON (or too deep to copy): mutate the bytes instead
        if out is not None and len(out) < max_size:
            return data[:1] + out
    result: bytes = atheris.Mutate(data, max_size)
    return result


def _mutate_input(
    target: str, data: bytes, rng: random.Random, byte_mutate: Callable[[bytes, int], bytes]
) -> bytes | None:
    if target not in JSON_TARGETS:
        return None
    if target == "hub_signature":
        header, _, body = data.partition(b"\n")
        body = _dump(_mutate_value(json.loads(body), rng, byte_mutate), rng)
        if rng.random() < 0.5:
            from integrations.meta import signatures

            header = signatures.sign_hub_body(body, rng.choice(SECRETS)).encode("ascii")
        return header + b"\n" + body
    return _dump(_mutate_value(json.loads(data), rng, byte_mutate), rng)


# ---------------------------------------------------------------------------------------------
# The fuzzing process


def fuzz_process(libfuzzer_args: list[str]) -> None:
    """Load the parsers under instrumentation and hand over to libFuzzer (which never returns)."""
    import atheris

    atheris.enabled_hooks.add("str")  # startswith() guides mutations like a comparison
    with atheris.instrument_imports(include=["integrations.meta"]):
        for module in ("integrations.meta.webhooks", "integrations.meta.signatures"):
            importlib.import_module(module)
    prepare()
    from config import input_guard
    from messaging.services import common

    for function in (
        common.clean_text,
        common.clean_json,
        input_guard.contains_unstorable,
        input_guard._unstorable,
    ):
        atheris.instrument_func(function)
    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input, custom_mutator=mutate)
    atheris.Fuzz()


# ---------------------------------------------------------------------------------------------
# The supervising process: runs libFuzzer, reads its report, prints one summary line


@dataclass
class Report:
    executions: int = 0
    exec_per_second: int = 0
    coverage: int = 0
    features: int = 0
    corpus: int = 0
    seconds: float = 0.0
    exit_code: int | None = None
    stuck: bool = False
    crashes: tuple[Path, ...] = ()
    hangs: tuple[Path, ...] = ()

    @property
    def failed(self) -> bool:
        return bool(self.crashes or self.hangs or self.stuck) or self.exit_code != 0

    def summary(self) -> str:
        return (
            f"F5 summary: executions={self.executions} exec_per_s={self.exec_per_second} "
            f"seconds={self.seconds:.0f} coverage={self.coverage} features={self.features} "
            f"corpus={self.corpus} crashes={len(self.crashes)} "
            f"hangs={len(self.hangs) + self.stuck} "
            f"exit={self.exit_code}"
        )


_STAT = re.compile(r"^stat::(\w+):\s+(\d+)")
_PULSE = re.compile(r"\bcov: (\d+) ft: (\d+) corp: (\d+)/")


def read_report(lines: Iterable[str], report: Report, echo: bool = True) -> None:
    for line in lines:
        if echo:
            sys.stderr.write(line)
        if match := _PULSE.search(line):
            report.coverage, report.features, report.corpus = map(int, match.groups())
        elif match := _STAT.match(line):
            name, value = match.group(1), int(match.group(2))
            if name == "number_of_executed_units":
                report.executions = value
            elif name == "average_exec_per_sec":
                report.exec_per_second = value


def run(
    seconds: int,
    corpus: Path,
    *,
    timeout: int = 5,
    crashes: Path = CRASHES,
    echo: bool = True,
    module: str = "bench.fuzz_parser",
) -> Report:
    """Fuzz for ``seconds`` in a child process running ``module --fuzz-process``."""
    for directory in (corpus, crashes):
        directory.mkdir(parents=True, exist_ok=True)
    seed_count = write_seeds(SEEDS)
    write_dictionary(DICTIONARY)
    before = set(crashes.iterdir())
    command = [
        sys.executable,
        "-m",
        module,
        "--fuzz-process",
        f"-max_total_time={seconds}",
        f"-timeout={timeout}",
        f"-max_len={MAX_LEN}",
        f"-dict={DICTIONARY}",
        f"-artifact_prefix={crashes}{os.sep}",
        "-print_final_stats=1",
        str(corpus),
        str(SEEDS),
    ]
    print(
        f"F5: fuzzing {len(TARGETS)} targets for {seconds} s from {seed_count} seeds; "
        f"corpus {corpus}, crashes to {crashes}",
        flush=True,
    )
    report = Report()
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, stderr=subprocess.PIPE, text=True, errors="replace"
    )
    assert process.stderr is not None
    reader = threading.Thread(target=read_report, args=(process.stderr, report, echo))
    reader.start()
    # libFuzzer stops itself after -max_total_time; this bound only catches a stuck process.
    try:
        report.exit_code = process.wait(timeout=seconds + 10 * timeout + 120)
    except subprocess.TimeoutExpired:
        report.stuck = True
        process.kill()
        report.exit_code = process.wait()
    reader.join()
    report.seconds = time.monotonic() - started
    new = sorted(set(crashes.iterdir()) - before)
    report.hangs = tuple(p for p in new if p.name.startswith("timeout-"))
    report.crashes = tuple(p for p in new if p.name.startswith(("crash-", "oom-", "leak-")))
    return report


def replay(paths: list[Path]) -> int:
    """Run saved inputs once each, uninstrumented, and show what they raise."""
    prepare()
    failures = 0
    for path in paths:
        data = path.read_bytes()
        name = TARGETS[data[0] % len(TARGETS)].name if data else "(empty)"
        try:
            one_input(data)
        except Exception:  # a finding is reported, not raised
            failures += 1
            print(f"{path} ({name}): FAILS")
            traceback.print_exc()
        else:
            print(f"{path} ({name}): ok")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--fuzz-process"]:
        fuzz_process(args_in[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3600, help="fuzzing time (default 1 h)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="kept inputs (grows)")
    parser.add_argument("--timeout", type=int, default=5, help="seconds per input before a hang")
    parser.add_argument("--quiet", action="store_true", help="do not echo libFuzzer's log")
    parser.add_argument("--replay", type=Path, nargs="+", help="run saved inputs once and stop")
    args = parser.parse_args(args_in)
    if args.replay:
        return replay(args.replay)
    report = run(args.seconds, args.corpus.resolve(), timeout=args.timeout, echo=not args.quiet)
    print(report.summary(), flush=True)
    for path in (*report.crashes, *report.hangs):
        print(f"F5: input saved to {path.relative_to(ROOT)}; replay it with")
        print(f"    .venv/bin/python -m bench.fuzz_parser --replay {path.relative_to(ROOT)}")
    if report.stuck:
        print("F5: the fuzzing process outlived its time limit and was killed (a hang)")
    elif report.failed and not (report.crashes or report.hangs):
        print(f"F5: libFuzzer exited with {report.exit_code}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
