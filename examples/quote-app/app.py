#!/usr/bin/env python3
"""quote-app: random quotes kept in PostgreSQL, served over HTTP.

    GET  /          an HTML page: a random quote and a form to add one
    GET  /quote     a random quote as text (JSON with ?format=json or
                    Accept: application/json)
    GET  /quotes    every quote, as JSON
    POST /quotes    adds one: JSON {"text": ...}, a form field text=..., or
                    the plain-text body; 201 with the stored quote as JSON
    GET  /healthz   200 while the database answers, else 503

The database is the one libpq's variables name (PGHOST, PGPORT, PGUSER,
PGPASSWORD or PGPASSWORD_FILE, PGDATABASE). At start the service waits for
it (DB_WAIT_SECONDS, 60), makes the table and, when it is empty, fills it
from the seed file (QUOTES_SEED). A request that finds its connection
broken (the database restarted) reconnects once, waiting up to
DB_RETRY_SECONDS (10) for the database to come back.

Only the standard library and Debian's python3-psycopg2: no build step,
nothing from PyPI.
"""

import html
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

MAX_QUOTE_CHARS = 500
MAX_BODY_BYTES = 16 * 1024
# Connections kept open between requests; more are opened when requests
# overlap and closed when they are done.
IDLE_CONNECTIONS = 4


def log(message):
    print(f"quote-app: {message}", file=sys.stderr, flush=True)


class ConfigError(Exception):
    """A setting in the environment that cannot be used."""


class DatabaseUnavailable(Exception):
    """The database did not answer before a deadline."""


class _Replied(Exception):
    """The request was answered already (an error reply)."""


class BadQuote(Exception):
    """A POSTed quote that cannot be stored; the message says why."""


def first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def env_number(name, default):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def settings():
    """The service's settings from the environment."""
    password = os.environ.get("PGPASSWORD")
    password_file = os.environ.get("PGPASSWORD_FILE")
    if password and password_file:
        raise ConfigError("both PGPASSWORD and PGPASSWORD_FILE are set: use one")
    if password_file:
        try:
            with open(password_file, encoding="utf-8") as f:
                password = f.read().rstrip("\n")
        except OSError as e:
            raise ConfigError(f"PGPASSWORD_FILE: {e.strerror}: {password_file}") from None
    port = env_number("PORT", 8080)
    if port != int(port) or port > 65535:
        raise ConfigError(f"PORT={os.environ['PORT']!r} is not a TCP port")
    db_port = env_number("PGPORT", 5432)
    if db_port != int(db_port) or db_port > 65535:
        raise ConfigError(f"PGPORT={os.environ['PGPORT']!r} is not a TCP port")
    return {
        "db": {
            "host": os.environ.get("PGHOST", "db"),
            "port": int(db_port),
            "user": os.environ.get("PGUSER", "quotes"),
            "password": password or "",
            "dbname": os.environ.get("PGDATABASE", "quotes"),
            "application_name": "quote-app",
        },
        "port": int(port),
        "wait": env_number("DB_WAIT_SECONDS", 60),
        "retry": env_number("DB_RETRY_SECONDS", 10),
        "seed": os.environ.get("QUOTES_SEED", "/app/quotes.txt"),
    }


def check_quote(text):
    """The quote as stored, or BadQuote."""
    if not isinstance(text, str):
        raise BadQuote("a quote is a string")
    text = text.strip()
    if not text:
        raise BadQuote("a quote needs some text")
    if "\n" in text or "\r" in text:
        raise BadQuote("a quote is one line")
    if len(text) > MAX_QUOTE_CHARS:
        raise BadQuote(f"a quote has at most {MAX_QUOTE_CHARS} characters")
    return text


class Database:
    """Connections to PostgreSQL, reused between requests."""

    def __init__(self, params, retry_seconds):
        self.params = params
        self.retry_seconds = retry_seconds
        self.where = f"{params['host']}:{params['port']}"
        self.idle = []
        self.lock = threading.Lock()

    def connect(self, deadline):
        """A new connection, trying until `deadline` (time.monotonic())."""
        tries = 0
        while True:
            left = deadline - time.monotonic()
            try:
                # libpq counts connect_timeout in whole seconds, 2 at least.
                return psycopg2.connect(connect_timeout=max(2, min(5, int(left))), **self.params)
            except psycopg2.OperationalError as e:
                if time.monotonic() + 0.5 >= deadline:
                    raise DatabaseUnavailable(
                        f"the database at {self.where} did not answer in time: {first_line(e)}"
                    ) from None
                # Say so now and then, not twice a second.
                if tries % 10 == 0:
                    log(f"waiting for the database at {self.where}: {first_line(e)}")
                tries += 1
                time.sleep(0.5)

    def transaction(self, work, wait=None):
        """work(cursor) in one transaction; its result. A connection found
        broken is dropped with every idle one (they share its fate when the
        server restarts) and the work runs once more on a new one."""
        deadline = time.monotonic() + (self.retry_seconds if wait is None else wait)
        for attempt in (1, 2):
            conn = self._take(deadline)
            try:
                with conn, conn.cursor() as cur:
                    result = work(cur)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                conn.close()
                self._drop_idle()
                if attempt == 2:
                    raise DatabaseUnavailable(f"the database at {self.where}: {first_line(e)}") from None
                continue
            except BaseException:
                # `with conn` rolled the transaction back: the connection is fine.
                self._give(conn)
                raise
            self._give(conn)
            return result
        raise AssertionError("unreachable")

    def _take(self, deadline):
        with self.lock:
            if self.idle:
                return self.idle.pop()
        return self.connect(deadline)

    def _give(self, conn):
        with self.lock:
            if len(self.idle) < IDLE_CONNECTIONS and not conn.closed:
                self.idle.append(conn)
                return
        conn.close()

    def _drop_idle(self):
        with self.lock:
            idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()

    def close(self):
        self._drop_idle()


def prepare(db, seed_path, wait):
    """Makes the table and seeds it when empty; the number of quotes."""
    try:
        with open(seed_path, encoding="utf-8") as f:
            seeds = [line.strip() for line in f if line.strip()]
    except OSError as e:
        raise ConfigError(f"QUOTES_SEED: {e.strerror}: {seed_path}") from None

    def work(cur):
        # Replicas starting together take turns here: one makes and seeds
        # the table, the others find it full.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('quote-app schema'))")
        cur.execute(
            """CREATE TABLE IF NOT EXISTS quotes (
                   id bigserial PRIMARY KEY,
                   text text NOT NULL UNIQUE,
                   added timestamptz NOT NULL DEFAULT now())"""
        )
        cur.execute("SELECT count(*) FROM quotes")
        (count,) = cur.fetchone()
        if count == 0:
            cur.executemany("INSERT INTO quotes (text) VALUES (%s) ON CONFLICT DO NOTHING", [(q,) for q in seeds])
            cur.execute("SELECT count(*) FROM quotes")
            (count,) = cur.fetchone()
            log(f"seeded {count} quotes from {seed_path}")
        return count

    return db.transaction(work, wait=wait)


def random_quote(cur):
    cur.execute("SELECT id, text FROM quotes ORDER BY random() LIMIT 1")
    row = cur.fetchone()
    return None if row is None else {"id": row[0], "text": row[1]}


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>quotes</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:3em auto;padding:0 1em}}
blockquote{{font-size:1.5em;margin:1em 0}}input[type=text]{{width:70%}}</style></head>
<body><h1>A quote</h1>
<blockquote>{quote}</blockquote>
<p>{count} quotes in the database. <a href="/">Another</a> &middot; <a href="/quotes">all, as JSON</a></p>
<form method="post" action="/quotes"><input type="text" name="text" maxlength="{max}" required>
<button>Add a quote</button></form>
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    server_version = "quote-app"
    # A client that stops sending does not hold a thread for ever.
    timeout = 30
    db = None

    def do_GET(self):
        try:
            self.get()
        except _Replied:
            pass

    def do_POST(self):
        try:
            self.post()
        except _Replied:
            pass

    def get(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/":
            self.page()
        elif url.path == "/quote":
            self.quote(url)
        elif url.path == "/quotes":
            self.all_quotes()
        elif url.path == "/healthz":
            self.health()
        else:
            self.reply(HTTPStatus.NOT_FOUND, f"no such page: {url.path}\n")

    def post(self):
        path = urllib.parse.urlsplit(self.path).path
        if path != "/quotes":
            if path in ("/", "/quote", "/healthz"):
                self.reply(HTTPStatus.METHOD_NOT_ALLOWED, "use GET here\n", headers={"Allow": "GET"})
            else:
                self.reply(HTTPStatus.NOT_FOUND, f"no such page: {path}\n")
            return
        self.add_quote()

    def page(self):
        def work(cur):
            quote = random_quote(cur)
            cur.execute("SELECT count(*) FROM quotes")
            return quote, cur.fetchone()[0]

        quote, count = self.query(work)
        text = "No quotes yet: add one." if quote is None else quote["text"]
        body = PAGE.format(quote=html.escape(text), count=count, max=MAX_QUOTE_CHARS)
        self.reply(HTTPStatus.OK, body, "text/html; charset=utf-8")

    def quote(self, url):
        quote = self.query(random_quote)
        if quote is None:
            self.reply(HTTPStatus.NOT_FOUND, "no quotes yet\n")
        elif self.wants_json(url):
            self.reply_json(HTTPStatus.OK, quote)
        else:
            self.reply(HTTPStatus.OK, quote["text"] + "\n")

    def all_quotes(self):
        def work(cur):
            cur.execute("SELECT id, text FROM quotes ORDER BY id")
            return [{"id": i, "text": t} for i, t in cur.fetchall()]

        self.reply_json(HTTPStatus.OK, self.query(work))

    def health(self):
        def work(cur):
            cur.execute("SELECT 1")
            return cur.fetchone()

        try:
            # Short: a healthcheck must answer before its own timeout.
            self.db.transaction(work, wait=2)
        except DatabaseUnavailable as e:
            self.reply(HTTPStatus.SERVICE_UNAVAILABLE, f"{e}\n")
            return
        self.reply(HTTPStatus.OK, "ok\n")

    def add_quote(self):
        try:
            text = check_quote(self.posted_text())
        except BadQuote as e:
            self.reply(HTTPStatus.BAD_REQUEST, f"{e}\n")
            return

        def work(cur):
            cur.execute(
                "INSERT INTO quotes (text) VALUES (%s) ON CONFLICT (text) DO NOTHING RETURNING id",
                (text,),
            )
            row = cur.fetchone()
            return None if row is None else {"id": row[0], "text": text}

        quote = self.query(work)
        if quote is None:
            self.reply(HTTPStatus.CONFLICT, "that quote is already there\n")
        elif "text/html" in self.headers.get("Accept", ""):
            # The page's form: back to the page.
            self.reply(HTTPStatus.SEE_OTHER, "added\n", headers={"Location": "/"})
        else:
            self.reply_json(HTTPStatus.CREATED, quote, headers={"Location": "/quotes"})

    def posted_text(self):
        """The quote in the request body, by its content type."""
        length = self.headers.get("Content-Length")
        if length is None:
            self.reply(HTTPStatus.LENGTH_REQUIRED, "send the quote with a Content-Length\n")
            raise _Replied
        try:
            length = int(length)
        except ValueError:
            self.reply(HTTPStatus.BAD_REQUEST, "a bad Content-Length\n")
            raise _Replied from None
        if length < 0 or length > MAX_BODY_BYTES:
            self.reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a body has at most {MAX_BODY_BYTES} bytes\n")
            raise _Replied
        try:
            body = self.rfile.read(length).decode("utf-8")
        except UnicodeDecodeError:
            raise BadQuote("the body is not UTF-8") from None
        kind = self.headers.get_content_type()
        if kind == "application/json":
            try:
                value = json.loads(body)
            except ValueError as e:
                raise BadQuote(f"the body is not JSON: {e}") from None
            if not isinstance(value, dict) or "text" not in value:
                raise BadQuote('send {"text": "..."}')
            return value["text"]
        if kind == "application/x-www-form-urlencoded":
            fields = urllib.parse.parse_qs(body)
            if "text" not in fields:
                raise BadQuote("send the form field text")
            return fields["text"][0]
        return body

    def wants_json(self, url):
        if urllib.parse.parse_qs(url.query).get("format") == ["json"]:
            return True
        return "application/json" in self.headers.get("Accept", "")

    def query(self, work):
        """work's result; _Replied once a 503 has been sent."""
        try:
            return self.db.transaction(work)
        except DatabaseUnavailable as e:
            log(str(e))
            self.reply(HTTPStatus.SERVICE_UNAVAILABLE, f"{e}\n")
            raise _Replied from None

    def reply_json(self, status, value, headers=None):
        self.reply(status, json.dumps(value) + "\n", "application/json", headers)

    def reply(self, status, body, kind="text/plain; charset=utf-8", headers=None):
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        # The healthcheck asks every second: its requests would drown the log.
        if self.path != "/healthz":
            log(f"{self.address_string()} {format % args}")


def main():
    try:
        config = settings()
    except ConfigError as e:
        log(str(e))
        return 2
    db = Database(config["db"], config["retry"])
    try:
        count = prepare(db, config["seed"], config["wait"])
    except (ConfigError, DatabaseUnavailable) as e:
        log(str(e))
        return 1
    except psycopg2.Error as e:
        log(f"preparing the table: {first_line(e)}")
        return 1

    Handler.db = db
    try:
        server = ThreadingHTTPServer(("", config["port"]), Handler)
    except OSError as e:
        log(f"cannot listen on port {config['port']}: {e.strerror}")
        return 1

    # As PID 1 the kernel ignores SIGTERM unless a handler is set: stop
    # taking requests, let the loop end, and close the connections.
    def stop(signum, _frame):
        log(f"{signal.Signals(signum).name}: stopping")
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"listening on port {config['port']} ({count} quotes in {config['db']['dbname']} at {db.where})")
    server.serve_forever()
    server.server_close()
    db.close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
