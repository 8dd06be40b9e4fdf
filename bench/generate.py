"""Generate BotFlow-shaped PostgreSQL databases for the backup benchmark.

    .venv/bin/python bench/generate.py --sizes 1m,4m          # idempotent
    .venv/bin/python bench/generate.py --sizes 1m --force     # drop and rebuild

Creates ``drp_bench_1m`` / ``drp_bench_4m`` (organizations, bots, conversations,
messages) on the local PostgreSQL (``PG_ADMIN_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``). Everything is generated on the
server with ``generate_series``; message bodies are built word by word from a chat
vocabulary (Zipf-like word frequencies, order numbers, amounts, phone numbers,
links, the odd emoji and embedded newline), plus a JSON metadata column with an
external message id, so compression ratios are those of real chat data rather
than of one repeated string. At 1M messages the plain ``pg_dump`` is ~240 MB.

A database is skipped when it exists and its ``COMMENT`` (written only after the
last step succeeded) names the same generator version and message count.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import psycopg

PG_ADMIN_URL = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Databases are called <prefix>_<size>; another prefix keeps one session's databases apart from another's.
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "drp_bench")
GENERATOR_VERSION = 2
SIZES = {"100k": 100_000, "1m": 1_000_000, "4m": 4_000_000}

# Chat vocabulary, most frequent first: picks are skewed to the front (Zipf-like).
VOCABULARY = """
the I you to a and is my it for of in on me your we can please this that be have what with
not do are hi no yes ok thanks order how will at an just from get so if when our there
help need know want would account time payment delivery number today check can't i'm it's
thank hello still update about send like could was but all one been has did here by
sure as they now more any their up out see also them sorry team got back only other
please, again which where why tomorrow week day hours minutes call message reply details
card bank transfer refund invoice balance airtime data bundle recharge voucher top-up
service support agent human menu option select type choose enter confirm cancel change
address email phone name ID store branch location open closed weekend Monday Friday
price cost fee amount total discount promo code special offer free plan upgrade subscribe
unsubscribe stop start status tracking parcel courier driver collected dispatched delayed
arrived received missing wrong damaged return exchange replace warranty complaint ticket
reference password login reset verify OTP PIN blocked locked app website link download
error problem issue working broken slow network signal loadshedding power outage area
sawubona ngiyabonga dankie asseblief molo enkosi yebo hayi eish lekker howzit shame
morning afternoon evening night soon later already yet never always sometimes maybe
really very much many few last next first new old same different good great bad fine
okay alright perfect awesome cool noted understood received done sent paid pending failed
successful approved declined processing expected estimated between before after until
""".split()

INTENTS = [
    "greeting",
    "order_status",
    "payment",
    "refund",
    "delivery",
    "account",
    "airtime",
    "data_bundle",
    "complaint",
    "handover",
    "faq",
    "opt_out",
    "feedback",
    "smalltalk",
]
LANGS = ["en", "en", "en", "en", "zu", "af", "xh", "st"]
CHANNELS = ["whatsapp", "whatsapp", "whatsapp", "messenger", "telegram", "web", "sms"]
NAMES = [
    "Thabo",
    "Lerato",
    "Sipho",
    "Ayanda",
    "Pieter",
    "Naledi",
    "Johan",
    "Zanele",
    "Kagiso",
    "Anele",
    "Fatima",
    "David",
    "Nomsa",
    "Bongani",
    "Chantel",
    "Mandla",
    "Precious",
    "Ruan",
    "Lindiwe",
    "Tshepo",
]
EMOJI = ["🙏", "👍", "😊", "😂", "🙂", "❤️", "✅", "📦", "😡", "🤔"]


def _array(values: list[str]) -> str:
    quoted = ",".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"ARRAY[{quoted}]::text[]"


def admin() -> psycopg.Connection:
    return psycopg.connect(PG_ADMIN_URL, autocommit=True)


def db_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def db_name(size: str) -> str:
    return f"{DB_PREFIX}_{size}"


def parse_size(size: str) -> int:
    size = size.lower()
    if size in SIZES:
        return SIZES[size]
    if size.endswith("k"):
        return int(float(size[:-1]) * 1_000)
    if size.endswith("m"):
        return int(float(size[:-1]) * 1_000_000)
    return int(size)


def marker(messages: int) -> str:
    return f"drp-bench generator v{GENERATOR_VERSION}: messages={messages} complete"


def is_ready(name: str, messages: int) -> bool:
    with admin() as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
    if not row or row[0] != marker(messages):
        return False
    with psycopg.connect(db_url(name)) as conn:
        count = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    return count == messages


SCHEMA = """
CREATE TABLE organizations (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    country char(2) NOT NULL,
    plan text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bots (
    id bigserial PRIMARY KEY,
    organization_id bigint NOT NULL,
    name text NOT NULL,
    channel text NOT NULL,
    settings jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE conversations (
    id bigserial PRIMARY KEY,
    organization_id bigint NOT NULL,
    bot_id bigint NOT NULL,
    channel text NOT NULL,
    contact text NOT NULL,
    status text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz
);
CREATE TABLE messages (
    id bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL,
    direction text NOT NULL,
    body text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
"""

CONSTRAINTS = [
    "ALTER TABLE bots ADD FOREIGN KEY (organization_id) REFERENCES organizations(id)",
    "ALTER TABLE conversations ADD FOREIGN KEY (organization_id) REFERENCES organizations(id)",
    "ALTER TABLE conversations ADD FOREIGN KEY (bot_id) REFERENCES bots(id)",
    "ALTER TABLE messages ADD FOREIGN KEY (conversation_id) REFERENCES conversations(id)",
    "CREATE INDEX messages_conversation ON messages (conversation_id)",
    "CREATE INDEX messages_created ON messages (created_at)",
    "CREATE INDEX conversations_org ON conversations (organization_id, started_at)",
]


# Bot replies are mostly templates with slots filled in, as in a real chatbot's history.
BOT_TEMPLATES = [
    "Hi {name}! 👋 Welcome to {org}. How can I help you today?\n1. Track an order\n2. Payments\n3. Talk to an agent",
    "Thanks {name}, I found order #{order}. It was dispatched on {date} and should arrive within 2-3 working days.",
    "Your payment of R{amount} was received on {date}. Reference: {ref}. Thank you for banking with {org}!",
    "Sorry, I didn't quite get that. Please reply with a number from the menu, or type AGENT to chat to a person.",
    "I'm connecting you to one of our agents. The waiting time is about {min} minutes. Please stay on the line.",
    "Your {gb}GB data bundle is active until {date}. Dial *136# to check your balance at any time.",
    "To reset your PIN, please confirm the last 4 digits of your ID number.",
    "Your refund of R{amount} for order #{order} is being processed and will reflect in 3-5 business days.",
    "We are experiencing loadshedding in your area. Deliveries may be delayed. We apologise for the inconvenience.",
    "Great news {name}! Your parcel with tracking number {ref} has been delivered. Rate our service from 1 to 5.",
    "Please send a photo of the damaged item and your order number (#{order}) so we can log a claim for you.",
    "Your ticket {ref} has been created. An agent will contact you on {phone} within 24 hours.",
    "You have been unsubscribed from {org} promotions. Reply START to subscribe again.",
    "Your OTP is {otp}. It expires in 5 minutes. Never share this code with anyone, not even {org} staff.",
    "Our branches are open Monday to Friday 08:00-17:00 and Saturday 08:00-13:00. Find your nearest store: https://botflow.example/stores",
    "Thanks for your feedback, {name}! 🙏 Is there anything else I can help you with?\n1. Yes\n2. No, thanks",
    "Your account balance is R{amount}. Your next instalment of R{amount2} is due on {date}.",
    "I can help you with: orders, deliveries, payments, refunds, airtime and data. What would you like to do?",
    "Sawubona {name}! Your airtime recharge of R{amount} to {phone} was successful.",
    "Unfortunately the payment for order #{order} failed (code {code}). Please try again or use another card.",
]


# What customers actually type, over and over; free text is mixed in.
CUSTOMER_PHRASES = [
    "hi",
    "hello",
    "menu",
    "1",
    "2",
    "3",
    "agent",
    "yes",
    "no",
    "thanks",
    "ok thank you",
    "hi there",
    "where is my order",
    "i want to speak to a person",
    "my data is not working",
    "how do i reset my pin",
    "i paid but it says failed",
    "when will my parcel arrive",
    "can i get a refund",
    "check my balance",
    "i didn't receive my OTP",
    "my card was declined",
    "the app keeps crashing",
    "please call me back",
    "i want to cancel my subscription",
    "what are your opening hours",
    "how much is the 10GB bundle",
    "i was charged twice",
    "the driver never came",
    "still waiting",
    "this is the third time i'm asking",
    "can you help me please",
    "good morning",
    "good afternoon",
    "sawubona",
    "molo",
    "dankie",
    "ngiyabonga",
    "buy airtime",
    "recharge R50",
    "track order",
    "change my address",
    "update my email address",
    "no network in my area since yesterday",
    "is there loadshedding today",
    "stop",
    "start",
]


def messages_sql(first: int, last: int, conversations: int) -> str:
    """INSERT for messages first..last (ids explicit so parallel workers can split ranges)."""
    vocab = _array(VOCABULARY)
    n = len(VOCABULARY)
    intents = _array(INTENTS)
    langs = _array(LANGS)
    emoji = _array(EMOJI)
    templates = _array(BOT_TEMPLATES)
    # Per row: a word count skewed to short messages, then words drawn Zipf-like from
    # the vocabulary (the correlated LATERAL forces one draw per row). Customers write
    # free text with the odd order number, amount, phone number, link or emoji; the
    # bot mostly answers from templates with the slots filled in, sometimes with
    # free text (an agent or a generated answer).
    return f"""
    INSERT INTO messages (id, conversation_id, direction, body, metadata, created_at)
    SELECT g,
           1 + (hashint % {conversations}),
           dir,
           CASE WHEN dir = 'out' AND r2 < 0.6 THEN
               replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
                   ({templates})[1 + (hashint / 7) % {len(BOT_TEMPLATES)}],
                   '{{name}}', ({_array(NAMES)})[1 + (hashint / 11) % {len(NAMES)}]),
                   '{{org}}', 'BotFlow Retail'),
                   '{{order}}', (100000 + (hashint / 13) % 900000)::text),
                   '{{date}}', to_char(timestamptz '2023-01-01' + g * interval '15 seconds', 'DD Mon YYYY')),
                   '{{amount}}', to_char(random() * 3000, 'FM9990.00')),
                   '{{amount2}}', to_char(random() * 900, 'FM990.00')),
                   '{{ref}}', upper(substr(md5(g::text || 'r'), 1, 10))),
                   '{{min}}', (1 + g % 17)::text),
                   '{{gb}}', (1 + g % 10)::text),
                   '{{phone}}', '+27 ' || (60 + g % 25) || ' ' || lpad(((hashint / 17) % 10000000)::text, 7, '0')),
                   '{{otp}}', lpad((hashint % 1000000)::text, 6, '0')),
                   '{{code}}', (ARRAY['05','51','54','57','91'])[1 + g % 5])
               || CASE WHEN r1 < 0.15 THEN ' ' || w.words ELSE '' END
           ELSE
               CASE WHEN dir = 'in' AND r1 < 0.55 THEN
                   ({_array(CUSTOMER_PHRASES)})[1 + (hashint / 19) % {len(CUSTOMER_PHRASES)}]
                   || CASE WHEN r2 < 0.5
                           THEN ' ' || ({_array(CUSTOMER_PHRASES)})[1 + (hashint / 23) % {len(CUSTOMER_PHRASES)}]
                           ELSE '' END
                   || CASE WHEN r1 < 0.25 THEN ' ' || w.words ELSE '' END
               ELSE w.words END
               || CASE WHEN r1 < 0.12 THEN ' order #' || (100000 + floor(random() * 900000)::int) ELSE '' END
               || CASE WHEN r1 BETWEEN 0.12 AND 0.20 THEN ' R' || to_char(random() * 5000, 'FM9990.00') ELSE '' END
               || CASE WHEN r1 BETWEEN 0.20 AND 0.24 THEN ' +27 ' || (60 + floor(random() * 25)::int) || ' '
                       || lpad(floor(random() * 10000000)::int::text, 7, '0') ELSE '' END
               || CASE WHEN r1 BETWEEN 0.24 AND 0.26 THEN ' https://botflow.example/t/' || substr(md5(g::text), 1, 10)
                       ELSE '' END
               || CASE WHEN r2 > 0.94 THEN ' ' || ({emoji})[1 + floor(random() * {len(EMOJI)})::int] ELSE '' END
               || CASE WHEN r2 BETWEEN 0.90 AND 0.94 THEN E'\\n' || w2.words ELSE '' END
           END,
           jsonb_build_object(
               'intent', ({intents})[1 + floor(random() * {len(INTENTS)})::int],
               'lang', ({langs})[1 + floor(random() * {len(LANGS)})::int],
               'wamid', 'wamid.' || substr(md5(g::text || 'x'), 1, 20)
           ) || CASE WHEN dir = 'in' THEN jsonb_build_object('confidence', round(random()::numeric, 2))
                     ELSE jsonb_build_object('latency_ms', floor(random() * 2500)::int) END,
           timestamptz '2023-01-01 00:00:00+00' + (g * interval '15 seconds') + random() * interval '15 seconds'
    FROM (
        SELECT g,
               abs(hashint8(g)) AS hashint,
               CASE WHEN g % 2 = 0 THEN 'in' ELSE 'out' END AS dir,
               random() AS r1,
               random() AS r2,
               CASE WHEN g % 2 = 0 THEN 1 + floor(power(random(), 1.6) * 26)::int
                    ELSE 6 + floor(power(random(), 1.3) * 36)::int END AS wc
        FROM generate_series({first}, {last}) g
    ) s
    CROSS JOIN LATERAL (
        SELECT array_to_string(ARRAY(
            SELECT ({vocab})[1 + floor(power(random(), 2.5) * {n})::int]
            FROM generate_series(1, s.wc)
        ), ' ') AS words
    ) w
    CROSS JOIN LATERAL (
        SELECT array_to_string(ARRAY(
            SELECT ({vocab})[1 + floor(power(random(), 2.5) * {n})::int]
            FROM generate_series(1, CASE WHEN s.r2 BETWEEN 0.90 AND 0.94 THEN 3 + (s.g % 9)::int ELSE 0 END)
        ), ' ') AS words
    ) w2
    """


def generate(size: str, *, force: bool = False, jobs: int = 2, log=print) -> str:
    """Ensure the database for ``size`` exists and is complete; returns its URL."""
    messages = parse_size(size)
    name = db_name(size)
    if not force and is_ready(name, messages):
        log(f"{name}: ready ({messages:,} messages)")
        return db_url(name)
    started = time.monotonic()
    organizations = max(10, messages // 5_000)
    bots = organizations * 3
    conversations = max(20, messages // 12)
    log(f"{name}: generating {messages:,} messages in {conversations:,} conversations...")
    with admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = db_url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(SCHEMA)
        conn.execute(
            f"""INSERT INTO organizations (id, name, country, plan, created_at)
            SELECT g, (ARRAY['Acme','Ubuntu','Kasi','Jozi','Cape','Durban','Highveld','Karoo'])[1 + g % 8]
                      || ' ' || (ARRAY['Telecom','Retail','Insurance','Logistics','Bank','Health'])[1 + g % 6]
                      || ' ' || g,
                   (ARRAY['ZA','ZA','ZA','KE','NG','BW'])[1 + g % 6],
                   (ARRAY['starter','growth','enterprise'])[1 + g % 3],
                   timestamptz '2021-01-01 00:00:00+00' + g * interval '1 day' * 0.3
            FROM generate_series(1, {organizations}) g"""
        )
        conn.execute(
            f"""INSERT INTO bots (id, organization_id, name, channel, settings, created_at)
            SELECT g, 1 + g % {organizations}, 'bot-' || g || '-' || substr(md5(g::text), 1, 6),
                   ({_array(CHANNELS)})[1 + g % {len(CHANNELS)}],
                   jsonb_build_object('language', 'en', 'handover', g % 2 = 0, 'greeting',
                                      'Hi! I am the ' || g || ' assistant. How can I help?', 'timeout_s', 300),
                   timestamptz '2022-01-01 00:00:00+00' + g * interval '3 hours'
            FROM generate_series(1, {bots}) g"""
        )
        conn.execute(
            f"""INSERT INTO conversations (id, organization_id, bot_id, channel, contact, status, started_at, closed_at)
            SELECT g, 1 + b % {organizations}, b, ({_array(CHANNELS)})[1 + b % {len(CHANNELS)}],
                   '+27' || (60 + g % 25) || lpad((abs(hashint8(g)) % 10000000)::text, 7, '0'),
                   (ARRAY['closed','closed','closed','open','handover'])[1 + g % 5],
                   t, CASE WHEN g % 5 < 3 THEN t + random() * interval '2 hours' END
            FROM (SELECT g, 1 + g % {bots} AS b,
                         timestamptz '2023-01-01 00:00:00+00' + g * interval '180 seconds' AS t
                  FROM generate_series(1, {conversations}) g) s"""
        )
    # Messages: split the id range across parallel connections (one per core).
    jobs = max(1, min(jobs, messages // 50_000 or 1))
    bounds = [1 + messages * i // jobs for i in range(jobs + 1)]
    errors: list[BaseException] = []

    def work(first: int, last: int) -> None:
        try:
            with psycopg.connect(url, autocommit=True) as c:
                c.execute("SET synchronous_commit = off")
                step = 250_000
                for lo in range(first, last + 1, step):
                    c.execute(messages_sql(lo, min(last, lo + step - 1), conversations))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(bounds[i], bounds[i + 1] - 1)) for i in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    log(f"{name}: rows inserted in {time.monotonic() - started:.0f} s; adding constraints and indexes...")
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("organizations", "bots", "conversations", "messages"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        for statement in CONSTRAINTS:
            conn.execute(statement)
        # Freeze and set hint bits now, so the first timed pg_dump does not write pages.
        conn.execute("VACUUM (FREEZE, ANALYZE)")
    with admin() as conn:
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{marker(messages)}'")
    with admin() as conn:
        size_bytes = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()[0]
    log(f"{name}: done in {time.monotonic() - started:.0f} s ({size_bytes / 1e6:.0f} MB on disk)")
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1m,4m", help="comma-separated: 100k, 1m, 4m, or any count like 250k")
    parser.add_argument("--force", action="store_true", help="drop and regenerate even if complete")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="parallel INSERT connections")
    args = parser.parse_args(argv)
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        generate(size, force=args.force, jobs=args.jobs, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
