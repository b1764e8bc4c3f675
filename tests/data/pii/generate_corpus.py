"""Generate the labelled PII corpus (seeded, deterministic): ``python tests/data/pii/generate_corpus.py``.

Writes next to this file:
- ``corpus.jsonl``: LLM-shaped prompts and completions with planted entities, one JSON object a line:
  ``{"id", "source", "text", "entities": [{"type", "start", "end", "value"}]}`` (character spans;
  ``value`` is what was planted, so a test can check that every span cuts exactly that);
- ``hard_negatives.jsonl``: snippets that look numeric or structured but hold no entity.

Both include the hand-written examples of ``handwritten_positives.txt`` and
``handwritten_negatives.txt`` (one example a line, ``\\n`` for a newline; positives mark entities
as ``[[TYPE|value]]``). Values are generated to pass their checks (Luhn, mod-97, SSA rules,
libphonenumber validity), so the corpus measures detection, not our own validators against themselves.
"""

# ruff: noqa: E501  (the hard-negative templates read better one a line)
from __future__ import annotations

import base64
import json
import random
import re
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberFormat

HERE = Path(__file__).resolve().parent
SEED = 20261123
ENTITY_COUNTS = {
    "EMAIL": 110,
    "SSN": 100,
    "CREDIT_CARD": 100,
    "PHONE": 110,
    "IBAN": 40,
    "IP_ADDRESS": 45,
    "SECRET": 45,
}
HARD_NEGATIVES_GENERATED = 360

FIRST = [
    "jane",
    "john",
    "maria",
    "li",
    "ahmed",
    "olga",
    "pierre",
    "anika",
    "raj",
    "sofia",
    "tom",
    "chloe",
    "mehmet",
    "yuki",
    "lars",
    "fatima",
    "diego",
    "emma",
    "noah",
    "priya",
    "kwame",
    "zoe",
    "lukas",
    "ines",
]
LAST = [
    "doe",
    "smith",
    "garcia",
    "wang",
    "hassan",
    "ivanova",
    "dupont",
    "schmidt",
    "patel",
    "rossi",
    "nguyen",
    "okafor",
    "muller",
    "tanaka",
    "berg",
    "khan",
    "lopez",
    "brown",
    "martin",
    "sharma",
]
DOMAINS = ["gmail.com", "example.org", "acme-corp.io", "mail.co.uk", "uni-heidelberg.de", "entreprise.fr",
           "outlook.com", "proton.me", "sales.example.com", "infosys.co.in", "startup.ai", "hr.bigbank.com",
           "yahoo.fr", "web.de", "company.travel"]  # fmt: skip

_Gen = Callable[[random.Random], tuple[str, str]]  # returns (value, context phrase before it)


# ---------------------------------------------------------------- entity values


def gen_email(rng: random.Random) -> tuple[str, str]:
    first, last, domain = rng.choice(FIRST), rng.choice(LAST), rng.choice(DOMAINS)
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first}_{last}",
            f"{first[0]}{last}{rng.randint(1, 99)}",
            f"{first}+{rng.choice(['news', 'ai', 'billing', 'test'])}",
            f"{first}-{last}",
            f"{first}.{last}.{rng.randint(1990, 2025)}",
            f"{first.upper()}.{last.upper()}",
            f"{first}{rng.randint(100, 9999)}",
            "o'" + last,
        ]
    )
    value = f"{local}@{domain.upper() if rng.random() < 0.1 else domain}"
    return value, rng.choice(["email", "e-mail", "contact", "write to", "reply to", "cc"])


def _ssn_parts(rng: random.Random) -> tuple[str, str, str]:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            break
    return f"{area:03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}"


def gen_ssn(rng: random.Random) -> tuple[str, str]:
    area, group, serial = _ssn_parts(rng)
    style = rng.random()
    if style < 0.6:
        return f"{area}-{group}-{serial}", rng.choice(["SSN", "social security number", "SSN:", "my SSN is"])
    if style < 0.8:
        return f"{area} {group} {serial}", rng.choice(["SSN", "social security no.", "SSN#"])
    return f"{area}{group}{serial}", rng.choice(["SSN", "SSN:", "social security number"])


def _luhn_complete(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return partial + str((10 - total % 10) % 10)


CARD_ISSUERS: list[tuple[Callable[[random.Random], str], list[int]]] = [
    (lambda r: "4", [16, 16, 16, 13, 19]),
    (lambda r: str(r.randint(51, 55)), [16]),
    (lambda r: str(r.randint(2221, 2720)), [16]),
    (lambda r: r.choice(["34", "37"]), [15]),
    (lambda r: r.choice(["6011", "65", str(r.randint(644, 649))]), [16, 19]),
    (lambda r: str(r.randint(3528, 3589)), [16]),
    (lambda r: r.choice(["36", "38", str(r.randint(300, 305))]), [14]),
]


def gen_card(rng: random.Random) -> tuple[str, str]:
    prefix_of, lengths = rng.choice(CARD_ISSUERS)
    prefix, length = prefix_of(rng), rng.choice(lengths)
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    digits = _luhn_complete(body)
    style = rng.random()
    if (length == 15 and style < 0.6) or (length == 14 and style < 0.5):
        value = f"{digits[:4]} {digits[4:10]} {digits[10:]}"
    elif style < 0.35:
        value = digits
    else:
        sep = " " if style < 0.75 else "-"
        value = sep.join(digits[i : i + 4] for i in range(0, length, 4))
    return value, rng.choice(["card", "card number", "credit card", "Visa", "paid with", "charged to"])


PHONE_REGIONS = ["US", "US", "GB", "DE", "FR", "IN"]


def _valid_number(rng: random.Random, region: str) -> phonenumbers.PhoneNumber:
    kind = rng.choice([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE])
    example = phonenumbers.example_number_for_type(region, kind)
    assert example is not None
    national = str(example.national_number)
    for _ in range(1000):
        keep = max(2, len(national) - 6)
        candidate = national[:keep] + "".join(rng.choice(string.digits) for _ in national[keep:])
        number = phonenumbers.parse(candidate, region)
        if phonenumbers.is_valid_number(number):
            return number
    raise RuntimeError(f"no valid number found for {region}")


def gen_phone(rng: random.Random) -> tuple[str, str]:
    region = rng.choice(PHONE_REGIONS)
    number = _valid_number(rng, region)
    style = rng.random()
    if style < 0.3:
        value = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    elif style < 0.65:
        value = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    elif style < 0.8:
        value = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    elif region == "US":
        nat = str(number.national_number)
        value = rng.choice(
            [
                f"{nat[:3]}.{nat[3:6]}.{nat[6:]}",
                f"1-{nat[:3]}-{nat[3:6]}-{nat[6:]}",
                nat,
                f"{nat[:3]}-{nat[3:6]}-{nat[6:]}",
            ]
        )
    else:
        value = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL).replace(" ", "-")
    return value, rng.choice(["call", "phone", "mobile", "tel.", "reach me on", "my number is", "WhatsApp"])


IBAN_SPECS = {  # country: (length, bban alphabet per position: 'n' digit, 'a' letter, 'c' either)
    "DE": "n" * 18,
    "GB": "aaaa" + "n" * 14,
    "FR": "n" * 10 + "c" * 11 + "nn",
    "ES": "n" * 20,
    "NL": "aaaa" + "n" * 10,
    "IT": "a" + "n" * 10 + "c" * 12,
    "BE": "n" * 12,
    "CH": "n" * 5 + "c" * 12,
}


def gen_iban(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(sorted(IBAN_SPECS))
    alphabet = {"n": string.digits, "a": string.ascii_uppercase, "c": string.digits + string.ascii_uppercase}
    bban = "".join(rng.choice(alphabet[k]) for k in IBAN_SPECS[country])
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    iban = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    value = iban if rng.random() < 0.4 else " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return value, rng.choice(["IBAN", "IBAN:", "account", "transfer to", "bank details"])


def gen_ip(rng: random.Random) -> tuple[str, str]:
    style = rng.random()
    if style < 0.6:
        value = f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    elif style < 0.75:
        value = f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    else:
        groups = [f"{rng.randint(0x2001, 0x2A0F):x}"] + [f"{rng.randint(0, 0xFFFF):x}" for _ in range(7)]
        value = ":".join(groups) if rng.random() < 0.5 else ":".join(groups[:3]) + "::" + groups[7]
    return value, rng.choice(["IP", "client IP", "from", "remote_addr=", "host"])


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits
UPPER_NUM = string.ascii_uppercase + string.digits


def gen_secret(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(8)
    if kind == 0:
        value = rng.choice(["AKIA", "ASIA"]) + _rand(rng, UPPER_NUM, 16)
    elif kind == 1:
        value = "sk-proj-" + _rand(rng, ALNUM + "_-", 48)
    elif kind == 2:
        value = "sk-ant-api03-" + _rand(rng, ALNUM + "_-", 86) + "AA"
    elif kind == 3:
        value = rng.choice(["ghp_", "gho_"]) + _rand(rng, ALNUM, 36)
    elif kind == 4:
        value = "github_pat_" + _rand(rng, ALNUM, 22) + "_" + _rand(rng, ALNUM, 59)
    elif kind == 5:
        value = "glpat-" + _rand(rng, ALNUM, 20)
    elif kind == 6:
        value = f"xoxb-{rng.randint(10**11, 10**12)}-{rng.randint(10**11, 10**12)}-{_rand(rng, ALNUM, 24)}"
    else:
        body = base64.b64encode(rng.randbytes(180)).decode()
        lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        value = f"-----BEGIN RSA PRIVATE KEY-----\n{lines}\n-----END RSA PRIVATE KEY-----"
    return value, rng.choice(["key", "token", "api_key =", "export OPENAI_API_KEY=", "secret"])


GENERATORS: dict[str, _Gen] = {
    "EMAIL": gen_email,
    "SSN": gen_ssn,
    "CREDIT_CARD": gen_card,
    "PHONE": gen_phone,
    "IBAN": gen_iban,
    "IP_ADDRESS": gen_ip,
    "SECRET": gen_secret,
}

# ---------------------------------------------------------------- prompts and completions

OPENERS = [
    "Can you help me write a short message to my landlord?",
    "Summarise this support ticket for the on-call engineer.",
    "Rewrite the following so it sounds more professional:",
    "Here is the customer record the user pasted into chat:",
    "Please fix the bug in this config and explain the change.",
    "Translate this to German, keep the formatting:",
    "Extract the action items from these meeting notes (Q3 planning, 14:30 call).",
    "Draft a reply to the email below. Keep it under 120 words.",
    "The user asked: why was I charged twice for order 4471-2290?",
    "Sure! Here's a cleaned-up version of your note:",
    "Assistant: I found the following details in the uploaded PDF (page 3 of 12).",
    "Here is the JSON payload from our webhook log at 2024-05-17T09:12:44Z:",
]
CLOSERS = [
    "Thanks in advance!",
    "Let me know if you need version 2.3.1 of the template.",
    "Total due: $1,249.00 by 30/06/2024.",
    "I'll be out of office until 12 March.",
    "Reference: INV-2024-00931.",
    "Best regards, the support team",
    "Does that look right?",
    "Please keep this confidential.",
    "",
]
LINKERS = [
    "Their {ctx} {v} is on file.",
    "{ctx} {v}",
    "My {ctx} is {v}, please update it.",
    "Update the record: {ctx} = {v};",
    '"{ctx}": "{v}",',
    "- {ctx}: {v}",
    "You can use {v} ({ctx}) for now.",
    "I noticed the {ctx} {v} appears twice in the log.",
    "({ctx} {v})",
    "{ctx} -> {v}.",
]


def _compose(rng: random.Random, planted: list[tuple[str, str, str]]) -> dict[str, Any]:
    pieces: list[str] = [rng.choice(OPENERS)]
    entities: list[dict[str, Any]] = []
    text = pieces[0]
    for entity_type, value, ctx in planted:
        linker = rng.choice(LINKERS)
        if "\n" in value:  # a PEM block goes on its own lines
            linker = "{ctx}:\n{v}\n"
        before, after = linker.replace("{ctx}", ctx).split("{v}")
        text += rng.choice([" ", "\n"]) + before
        start = len(text)
        text += value
        entities.append({"type": entity_type, "start": start, "end": len(text), "value": value})
        text += after
    closer = rng.choice(CLOSERS)
    if closer:
        text += " " + closer
    return {"text": text, "entities": entities}


def generate_positives(rng: random.Random) -> list[dict[str, Any]]:
    pending: list[tuple[str, str, str]] = []
    for entity_type, count in ENTITY_COUNTS.items():
        for _ in range(count):
            value, ctx = GENERATORS[entity_type](rng)
            pending.append((entity_type, value, ctx))
    rng.shuffle(pending)
    records: list[dict[str, Any]] = []
    while pending:
        take = min(len(pending), rng.choice([1, 1, 2, 3]))
        planted, pending = pending[:take], pending[take:]
        record = _compose(rng, planted)
        records.append({"id": f"gen-{len(records):04d}", "source": "generated", **record})
    return records


# ---------------------------------------------------------------- hard negatives


def _hex(rng: random.Random, n: int) -> str:
    return _rand(rng, "0123456789abcdef", n)


def _negative(rng: random.Random) -> tuple[str, str]:

    def d(n: int) -> str:
        return _rand(rng, string.digits, n)

    y, mo, da = rng.randint(2015, 2026), rng.randint(1, 12), rng.randint(1, 28)
    hh, mm, ss = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    uuid = f"{_hex(rng, 8)}-{_hex(rng, 4)}-4{_hex(rng, 3)}-a{_hex(rng, 3)}-{_hex(rng, 12)}"
    choices: list[tuple[str, str]] = [
        ("timestamp", f"{y}-{mo:02d}-{da:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{d(3)}Z request completed in {d(3)} ms"),
        ("timestamp", f"[{y}-{mo:02d}-{da:02d} {hh:02d}:{mm:02d}:{ss:02d},{d(3)}] INFO worker-{d(1)} started"),
        ("timestamp", f"created_at={rng.randint(1_500_000_000, 1_800_000_000)} updated_at={rng.randint(1_500_000_000, 1_800_000_000)}"),
        ("timestamp", f"The meeting moved to {da:02d}/{mo:02d}/{y} at {hh:02d}:{mm:02d}."),
        ("timestamp", f"epoch ms {rng.randint(1_500_000_000_000, 1_800_000_000_000)}"),
        ("order", f"Your order #{d(3)}-{d(7)}-{d(7)} has shipped."),
        ("order", f"Invoice INV-{y}-{d(5)} for {rng.randint(2, 40)} seats, PO {d(8)}."),
        ("order", f"Order number {d(10)} was refunded on {da:02d}.{mo:02d}.{y}."),
        ("order", f"ticket #{d(6)} escalated; case ref {d(4)}-{d(4)}-{d(4)}"),
        ("order", f"Invoice No. {d(3)} {d(3)} {d(4)} is attached."),
        ("version", f"Upgraded numpy from {rng.randint(1, 2)}.{rng.randint(0, 26)}.{rng.randint(0, 9)} to {rng.randint(1, 2)}.{rng.randint(0, 26)}.{rng.randint(0, 9)}"),
        ("version", f"Chrome/{rng.randint(90, 130)}.0.{d(4)}.{d(3)} Safari/537.36"),
        ("version", f"release v{rng.randint(1, 12)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}.{rng.randint(0, 9)} is tagged"),
        ("version", f"kernel 5.{rng.randint(0, 19)}.{rng.randint(0, 200)}-{rng.randint(10, 99)}-generic, build {d(8)}"),
        ("version", f"requires python>=3.{rng.randint(8, 13)} and pydantic==2.{rng.randint(0, 11)}.{rng.randint(0, 9)}"),
        ("uuid", f"trace_id={uuid} span_id={_hex(rng, 16)}"),
        ("uuid", f"DELETE /v1/orgs/{uuid}/keys/{_hex(rng, 8)}-{_hex(rng, 4)}-{_hex(rng, 4)}-{_hex(rng, 4)}-{_hex(rng, 12)}"),
        ("hash", f"commit {_hex(rng, 40)} (HEAD -> main)"),
        ("hash", f"sha256:{_hex(rng, 64)}"),
        ("hash", f"md5 {_hex(rng, 32)}  model.bin"),
        ("hash", f"etag: \"{_hex(rng, 32)}-{rng.randint(2, 99)}\""),
        ("log", f"GET /api/items?page={rng.randint(1, 99)}&limit=50 200 {d(4)}B {rng.randint(1, 999)}ms pid={d(5)}"),
        ("log", f"ERROR code=E{d(4)} retry={rng.randint(1, 5)}/5 backoff={d(4)}ms queue_depth={d(6)}"),
        ("log", f"lambda RequestId: {uuid} Duration: {rng.randint(1, 900)}.{d(2)} ms Billed Duration: {rng.randint(1, 900)} ms"),
        ("log", f"tokens: prompt={d(4)} completion={d(3)} total={d(5)} cost_usd=0.{d(5)}"),
        ("code", f"const MAX_RETRIES = {rng.randint(1, 9)}; const TIMEOUT_MS = {d(5)}; let seed = {d(9)};"),
        ("code", f"arr[{rng.randint(0, 9)}::{rng.randint(1, 9)}] and x = 0x{_hex(rng, 8)}; mask = 0b{_rand(rng, '01', 16)}"),
        ("code", f"for i in range({d(7)}):\\n    total += i * {d(4)} % {d(3)}"),
        ("code", f"assert checksum({d(12)}) == {d(10)}"),
        ("code", f"INSERT INTO t VALUES ({d(4)}, {d(6)}, '{y}-{mo:02d}-{da:02d}', {d(3)}.{d(2)});"),
        ("code", f"matrix = [[{d(3)}, {d(3)}, {d(3)}], [{d(3)}, {d(3)}, {d(3)}]]"),
        ("currency", f"Revenue was ${rng.randint(1, 999)},{d(3)},{d(3)}.{d(2)} in Q{rng.randint(1, 4)}."),
        ("currency", f"Le total est de {rng.randint(1, 99)} {d(3)} {d(3)},{d(2)} EUR."),
        ("currency", f"Budget: USD {d(3)} {d(3)} {d(3)} approved; spend to date {rng.randint(1, 99)}.{d(1)}%"),
        ("currency", f"₹{rng.randint(1, 99)},{d(2)},{d(3)} was credited; balance ₹{d(2)},{d(3)}.{d(2)}"),
        ("currency", f"Price per 1M tokens: $0.{d(2)} input / ${rng.randint(1, 60)}.{d(2)} output"),
        ("isbn", f"ISBN 978-{rng.randint(0, 1)}-{d(3)}-{d(5)}-{d(1)}"),
        ("isbn", f"See the book (ISBN-10: {d(1)}-{d(3)}-{d(5)}-{d(1)}) chapter {rng.randint(1, 30)}."),
        ("tracking", f"UPS tracking 1Z{_rand(rng, UPPER_NUM, 6)}{d(10)}"),
        ("tracking", f"FedEx tracking number: {d(4)} {d(4)} {d(4)}"),
        ("tracking", f"USPS: {d(4)} {d(4)} {d(4)} {d(4)} {d(4)} {d(2)}"),
        ("measure", f"The bridge is {d(4)} m long and carries {d(2)},{d(3)} vehicles a day at {rng.randint(20, 90)}.{d(1)} km/h."),
        ("measure", f"GPS {rng.randint(-89, 89)}.{d(6)}, {rng.randint(-179, 179)}.{d(6)}"),
        ("misc", f"Room {d(3)}, floor {rng.randint(1, 40)}, badge {d(6)}; extension x{d(4)}"),
        ("misc", f"Lot {d(2)}-{d(4)}-{d(3)} expires {mo:02d}/{y % 100:02d}"),
        ("misc", f"npm install left-pad@1.{rng.randint(0, 9)}.{rng.randint(0, 9)} lodash@4.17.{rng.randint(0, 21)}"),
        ("misc", f"git clone git@github.com:acme/{rng.choice(LAST)}-service.git && cd {rng.choice(LAST)}"),
        ("misc", f"Use the @{rng.choice(FIRST)} mention and the #{d(4)} channel; decorator @dataclass(frozen=True)"),
        ("misc", f"The sk-learn pipeline and task-{d(3)} risk-{rng.choice(LAST)} flags; DE{d(2)} is a region code"),
        ("misc", f"MAC {_hex(rng, 2)}:{_hex(rng, 2)}:{_hex(rng, 2)}:{_hex(rng, 2)}:{_hex(rng, 2)}:{_hex(rng, 2)} at {hh:02d}:{mm:02d}:{ss:02d}"),
        ("misc", f"Model gpt-4o-{y}-{mo:02d}-{da:02d} scored {rng.randint(50, 99)}.{d(1)} on MMLU ({d(5)} questions)"),
    ]  # fmt: skip
    return rng.choice(choices)


def generate_negatives(rng: random.Random) -> list[dict[str, Any]]:
    records = []
    for i in range(HARD_NEGATIVES_GENERATED):
        category, text = _negative(rng)
        records.append({"id": f"neg-{i:04d}", "source": "generated", "category": category,
                        "text": text.replace("\\n", "\n"), "entities": []})  # fmt: skip
    return records


# ---------------------------------------------------------------- hand-written examples

_MARK = re.compile(r"\[\[([A-Z_]+)\|(.*?)\]\]", re.DOTALL)


def parse_marked(line: str) -> dict[str, Any]:
    """``[[TYPE|value]]`` markup to text plus exact spans; ``\\n`` becomes a newline."""
    line = line.replace("\\n", "\n")
    text_parts: list[str] = []
    entities: list[dict[str, Any]] = []
    cursor = 0
    length = 0
    for m in _MARK.finditer(line):
        text_parts.append(line[cursor : m.start()])
        length += m.start() - cursor
        entities.append(
            {"type": m.group(1), "start": length, "end": length + len(m.group(2)), "value": m.group(2)}
        )
        text_parts.append(m.group(2))
        length += len(m.group(2))
        cursor = m.end()
    text_parts.append(line[cursor:])
    return {"text": "".join(text_parts), "entities": entities}


def _lines(name: str) -> Iterator[str]:
    for line in (HERE / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("# "):
            yield line


def build() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(SEED)
    positives = generate_positives(rng)
    for i, line in enumerate(_lines("handwritten_positives.txt")):
        positives.append({"id": f"hand-{i:03d}", "source": "handwritten", **parse_marked(line)})
    negatives = generate_negatives(rng)
    for i, line in enumerate(_lines("handwritten_negatives.txt")):
        negatives.append({"id": f"hand-neg-{i:03d}", "source": "handwritten", "category": "handwritten",
                          "text": line.replace("\\n", "\n"), "entities": []})  # fmt: skip
    return positives, negatives


def render(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)


def main() -> None:
    positives, negatives = build()
    (HERE / "corpus.jsonl").write_text(render(positives), encoding="utf-8")
    (HERE / "hard_negatives.jsonl").write_text(render(negatives), encoding="utf-8")
    print(f"{len(positives)} positive records, {len(negatives)} hard negatives")


if __name__ == "__main__":
    main()
