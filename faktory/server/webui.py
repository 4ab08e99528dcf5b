"""The pages of the embedded server's web UI (HTTP plumbing, login and CSRF: :mod:`.web`).

Everything is rendered here on the server, from the live store, on the server's event loop:
no template engine, no build step, nothing loaded from elsewhere (the CSS and the one
script are inline, under a Content-Security-Policy that allows nothing else).  Lists are
paged (``?page=N``, 25 rows a page, ``?count=`` up to 500): a page of the dead set costs
one sort of the set's records and the decoding of the 25 shown, however large the set.

Pages: dashboard ``/``; ``/queues`` and ``/queues/NAME``; ``/busy``; ``/retries``,
``/scheduled``, ``/dead`` (``?q=`` filters by a substring of the job's JSON) and one job at
``/<set>/<key>``; ``/search?jid=``.  Actions (POST, CSRF token required):

* ``/queues``: ``action=pause|resume|clear|remove`` for ``queue=NAME`` (repeatable) or
  ``queue=*``;
* ``/busy``: ``signal=quiet|terminate`` for ``wid=WID`` or ``wid=all``;
* ``/retries``, ``/scheduled``, ``/dead``: ``action=retry|delete|kill`` for the selected
  ``key=KEY`` values, or for every job (matching ``q`` when given) with ``scope=all``.
"""
from __future__ import annotations

import html
import itertools
import json
import secrets
import time
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import quote, urlencode

from faktory.server import bigline, gojson
from faktory.server.persist import JobRecord
from faktory.server.store import DEAD_TTL, SortedSet
from faktory.server.web import CSRF_COOKIE, CSRF_FIELD, Request, Response

if TYPE_CHECKING:  # pragma: no cover
    from faktory.server.server import FaktoryServer
    from faktory.server.web import Web

__all__ = ["Pages"]

PER_PAGE = 25
MAX_PER_PAGE = 500
SETS = ("retries", "scheduled", "dead")
_TITLES = {"retries": "Retries", "scheduled": "Scheduled", "dead": "Dead"}
_PAUSED = '<span class="tag paused">paused</span>'
_ACTIVE = '<span class="tag running">active</span>'
_ACTION_DONE = {"retry": "queued again", "delete": "deleted", "kill": "moved to the dead set"}


def e(value: Any) -> str:
    """HTML-escaped text of ``value``."""
    return html.escape(str(value), quote=True)


def ago(t: float, now: float) -> str:
    """``'12 s ago'``, ``'in 3 min'``... for an epoch time."""
    delta = now - t
    future = delta < 0
    delta = abs(delta)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if delta >= size:
            text = f"{delta / size:.0f} {unit}"
            break
    else:
        text = f"{delta:.0f} s"
    return f"in {text}" if future else f"{text} ago"


def when(t: float, now: float) -> str:
    """A ``<time>`` element: relative text, the exact UTC time as its tooltip."""
    exact = gojson.format_time(t) if t > 0 else ""
    return f'<time datetime="{e(exact)}" title="{e(exact)}">{e(ago(t, now))}</time>'


def short_json(value: Any, limit: int = 120) -> str:
    if type(value) is bigline.Preview:  # the start of a huge job's member, as stored
        text = str(value)
        return text if len(text) <= limit else text[:limit - 1] + "…"
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _job(rec: JobRecord) -> dict[str, Any]:
    try:
        job = bigline.preview_fields(rec.payload)  # (a huge job's big members: their start)
    except ValueError:
        return {"jid": rec.jid}
    return job if isinstance(job, dict) else {"jid": rec.jid}


_CSS = """
:root{--ink:#1d2330;--mute:#667085;--line:#e3e6eb;--bg:#f6f7f9;--brand:#2d5bd7;--bad:#c4322b;
--ok:#21875a;--warn:#b7791f}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--ink);background:var(--bg)}a{color:var(--brand);text-decoration:none}a:hover{text-decoration:underline}
header{background:#18202f;color:#fff;display:flex;flex-wrap:wrap;align-items:center;gap:4px 18px;padding:8px 20px}
header .brand{font-weight:700;letter-spacing:.02em;color:#fff;margin-right:8px}
header nav a{color:#cfd6e4;padding:6px 8px;border-radius:4px}header nav a.on{background:#2c3850;color:#fff}
header nav .n{display:inline-block;min-width:1.6em;margin-left:4px;padding:0 5px;border-radius:9px;
background:#3a4866;color:#fff;font-size:12px;text-align:center}
header form{margin-left:auto}header input{padding:5px 8px;border-radius:4px;border:0;width:14em}
main{max-width:1180px;margin:0 auto;padding:18px 20px 40px}h1{font-size:20px;margin:4px 0 14px}
h2{font-size:16px;margin:22px 0 8px}.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:10px}
.card{background:#fff;border:1px solid var(--line);border-radius:6px;padding:10px 12px}
.card b{display:block;font-size:22px;font-variant-numeric:tabular-nums}.card span{color:var(--mute);font-size:12px}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid var(--line);border-radius:6px}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--mute);font-weight:600;background:#fafbfc}td.num,th.num{text-align:right;
font-variant-numeric:tabular-nums}tr:last-child td{border-bottom:0}code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
pre{background:#fff;border:1px solid var(--line);border-radius:6px;padding:10px;overflow:auto;max-height:420px}
button{font:inherit;padding:4px 10px;border-radius:4px;border:1px solid #c6ccd6;background:#fff;cursor:pointer}
button:hover{border-color:var(--brand)}button.danger{color:var(--bad)}button.primary{background:var(--brand);
color:#fff;border-color:var(--brand)}form.inline{display:inline}.actions{display:flex;flex-wrap:wrap;gap:6px;margin:10px 0}
.bar{display:flex;flex-wrap:wrap;align-items:center;gap:8px;margin:0 0 10px}.bar input[type=search]{padding:5px 8px;
border:1px solid #c6ccd6;border-radius:4px;width:20em}.pager{margin:10px 0;color:var(--mute)}.pager a,.pager b{margin-right:8px}
.tag{display:inline-block;padding:0 6px;border-radius:9px;font-size:12px;background:#e8ecf5}
.tag.paused,.tag.quiet{background:#fdf0d5;color:var(--warn)}.tag.terminate,.tag.err{background:#fbe4e2;color:var(--bad)}
.tag.running{background:#dff3e9;color:var(--ok)}.note{padding:8px 12px;border-radius:6px;background:#e6f0ff;margin:0 0 12px}
.empty{color:var(--mute);padding:14px;background:#fff;border:1px solid var(--line);border-radius:6px}
.muted{color:var(--mute)}dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;background:#fff;
border:1px solid var(--line);border-radius:6px;padding:10px 12px;margin:0}dt{color:var(--mute)}dd{margin:0;word-break:break-all}
#chart{background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px}#chart svg{width:100%;height:200px;display:block}
.legend{font-size:12px;color:var(--mute)}.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 10px}
.lp{background:var(--brand)}.lf{background:var(--bad)}footer{color:var(--mute);font-size:12px;margin-top:30px}
"""

# The dashboard's live part: polls /stats, updates the numbers, draws the per-second rates
# of processed and failed jobs as two lines in an SVG.  Everything else works without it.
_JS = """
(function(){
var root=document.getElementById('chart');if(!root)return;
var every=+root.getAttribute('data-poll')||2000,keep=60,pts=[],last=null;
var NS='http://www.w3.org/2000/svg',svg=document.createElementNS(NS,'svg');
svg.setAttribute('viewBox','0 0 600 200');svg.setAttribute('preserveAspectRatio','none');
root.querySelector('.plot').appendChild(svg);
function el(n,a){var x=document.createElementNS(NS,n);for(var k in a)x.setAttribute(k,a[k]);svg.appendChild(x);return x}
var grid=[0,1,2,3].map(function(i){return el('line',{x1:0,x2:600,y1:10+i*60,y2:10+i*60,stroke:'#e3e6eb'})});
var lp=el('polyline',{fill:'none',stroke:'#2d5bd7','stroke-width':2,id:'line-processed'});
var lf=el('polyline',{fill:'none',stroke:'#c4322b','stroke-width':2,id:'line-failed'});
var top=el('text',{x:4,y:22,'font-size':11,fill:'#667085'});
function line(pl,key,max){pl.setAttribute('points',pts.map(function(p,i){
 return (i*600/(keep-1)).toFixed(1)+','+(190-180*p[key]/max).toFixed(1)}).join(' '))}
function draw(){var max=1;pts.forEach(function(p){max=Math.max(max,p.p,p.f)});
 line(lp,'p',max);line(lf,'f',max);top.textContent=Math.ceil(max)+'/s';
 var now=pts[pts.length-1];if(now){root.querySelector('[data-rate=processed]').textContent=now.p.toFixed(1);
 root.querySelector('[data-rate=failed]').textContent=now.f.toFixed(1)}}
function poll(){var r=new XMLHttpRequest();r.open('GET','stats');r.onload=function(){
 if(r.status!==200)return;var s=JSON.parse(r.responseText);
 document.querySelectorAll('[data-stat]').forEach(function(n){var v=s[n.getAttribute('data-stat')];
  if(v!==undefined)n.textContent=v.toLocaleString('en-US')});
 var body=document.querySelector('#queue-table tbody');
 Object.keys(s.queues).sort().forEach(function(q){var n=document.querySelector('[data-queue="'+CSS.escape(q)+'"]');
  if(!n&&body){var tr=document.createElement('tr'),a=document.createElement('a'),td=document.createElement('td');
   a.href='/queues/'+encodeURIComponent(q);a.textContent=q;td.appendChild(a);tr.appendChild(td);
   n=document.createElement('td');n.className='num';n.setAttribute('data-queue',q);tr.appendChild(n);body.appendChild(tr);
   var none=document.getElementById('no-queues');if(none)none.remove()}
  if(n)n.textContent=s.queues[q].toLocaleString('en-US')});
 if(last){var dt=Math.max(.001,s.time-last.time);pts.push({p:Math.max(0,s.processed-last.processed)/dt,
  f:Math.max(0,s.failures-last.failures)/dt});if(pts.length>keep)pts.shift();draw()}
 last=s;root.setAttribute('data-samples',pts.length)};r.send()}
poll();setInterval(poll,every);
})();
"""


class Pages:
    """Renders the pages and carries out the actions of one server's UI."""

    def __init__(self, server: "FaktoryServer", web: "Web") -> None:
        self.server = server
        self.web = web
        #: how often the dashboard polls /stats, in ms (tests make it faster)
        self.poll_ms = 2000

    @property
    def store(self) -> Any:
        return self.server.store

    # ------------------------------------------------------------------ live numbers

    def stats(self) -> dict[str, Any]:
        """The dashboard's numbers (``GET /stats``)."""
        store = self.store
        queues = store.queue_sizes()
        return {"time": time.time(), "processed": store.processed, "failures": store.failures,
                "enqueued": sum(queues.values()), "retries": len(store.retries),
                "scheduled": len(store.scheduled), "dead": len(store.dead),
                "working": len(store.working), "connections": self.server.connections,
                "workers": len(self.server._workers), "queues": queues}

    # ------------------------------------------------------------------ routing

    def get(self, req: Request) -> Response:
        parts = [p for p in req.path.split("/") if p]
        cookie = req.cookies.get(CSRF_COOKIE, "")
        new_cookie = ""
        if len(cookie) != 32:
            cookie = new_cookie = secrets.token_hex(16)
        token = self.web.csrf_token(cookie)
        if not parts:
            title, body = "Dashboard", self.dashboard()
            active = "dashboard"
        elif parts[0] == "queues" and len(parts) == 1:
            title, body, active = "Queues", self.queues(req, token), "queues"
        elif parts[0] == "queues" and len(parts) == 2:
            title, body, active = f"Queue {parts[1]}", self.queue(req, parts[1], token), "queues"
        elif parts[0] == "busy" and len(parts) == 1:
            title, body, active = "Busy", self.busy(token), "busy"
        elif parts[0] in SETS and len(parts) == 1:
            title, body, active = _TITLES[parts[0]], self.job_set(req, parts[0], token), parts[0]
        elif parts[0] in SETS and len(parts) == 2:
            found = self.job_detail(req, parts[0], parts[1], token)
            if found is None:
                return self._page(req, 404, "Not found", parts[0],
                                  f'<h1>No such job</h1><p class="empty">This job is no longer in '
                                  f'{e(_TITLES[parts[0]].lower())}. <a href="/{parts[0]}">Back to the list</a>'
                                  f'</p>', new_cookie)
            title, body, active = "Job", found, parts[0]
        elif parts[0] == "search" and len(parts) == 1:
            title, body, active = "Search", self.search(req), ""
        else:
            return self._page(req, 404, "Not found", "", '<h1>Not found</h1><p class="empty">'
                              'There is no such page. <a href="/">Dashboard</a></p>', new_cookie)
        return self._page(req, 200, title, active, body, new_cookie)

    def post(self, req: Request) -> Response:
        parts = [p for p in req.path.split("/") if p]
        if parts == ["queues"]:
            return self.queues_action(req)
        if parts == ["busy"]:
            return self.busy_action(req)
        if len(parts) in (1, 2) and parts[0] in SETS:
            return self.set_action(req, parts[0], parts[1] if len(parts) == 2 else None)
        return Response(404, "not found\n")

    # ------------------------------------------------------------------ layout

    def _page(self, req: Request, status: int, title: str, active: str, body: str,
              new_cookie: str) -> Response:
        store = self.store
        nonce = secrets.token_urlsafe(12)
        counts = {"busy": len(store.working), "retries": len(store.retries),
                  "scheduled": len(store.scheduled), "dead": len(store.dead)}
        links = []
        for key, label in (("dashboard", "Dashboard"), ("queues", "Queues"), ("busy", "Busy"),
                           ("retries", "Retries"), ("scheduled", "Scheduled"), ("dead", "Dead")):
            href = "/" if key == "dashboard" else f"/{key}"
            n = f'<span class="n" data-stat="{"working" if key == "busy" else key}">{counts[key]:,}</span>' \
                if key in counts else ""
            links.append(f'<a href="{href}"{" class=on" if key == active else ""}>{label}{n}</a>')
        done = req.query.get("done", [""])[0]
        note = f'<p class="note" role="status">{e(done)}</p>' if done else ""
        uptime = max(0, int(self.server.clock.now() - self.server.started_at))
        from faktory.server.server import VERSION
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<title>{e(title)} · Faktory</title><link rel="icon" href="data:,">'
            f'<style nonce="{nonce}">{_CSS}</style></head><body>'
            f'<header><a class="brand" href="/">Faktory</a><nav>{"".join(links)}</nav>'
            '<form action="/search" method="get" role="search"><input type="search" name="jid" '
            'placeholder="Find a job by jid" aria-label="jid"></form></header>'
            f'<main>{note}{body}<footer>Embedded Faktory-protocol server (faktory-turbo), '
            f'protocol of Faktory {e(VERSION)} · up {uptime // 3600} h {uptime // 60 % 60} min · '
            f'{self.server.connections} connections</footer></main>'
            f'<script nonce="{nonce}">{_JS}</script></body></html>')
        headers = [("Content-Security-Policy",
                    f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
                    "connect-src 'self'; img-src 'self' data:; form-action 'self'; "
                    "frame-ancestors 'none'; base-uri 'none'"),
                   ("Referrer-Policy", "same-origin"), ("X-Frame-Options", "DENY")]
        if new_cookie:
            headers.append(("Set-Cookie", f"{CSRF_COOKIE}={new_cookie}; Path=/; HttpOnly; SameSite=Strict"))
        return Response(status, page, "text/html; charset=utf-8", headers)

    @staticmethod
    def _csrf(token: str) -> str:
        return f'<input type="hidden" name="{CSRF_FIELD}" value="{e(token)}">'

    @staticmethod
    def _pager(req: Request, total: int) -> tuple[int, int, str]:
        """(first index, count, pager HTML) for ``?page=`` and ``?count=``."""
        try:
            per = max(1, min(MAX_PER_PAGE, int(req.arg("count", str(PER_PAGE)))))
        except ValueError:
            per = PER_PAGE
        pages = max(1, -(-total // per))
        try:
            page = max(1, min(pages, int(req.arg("page", "1"))))
        except ValueError:
            page = 1
        if pages == 1:
            return 0, per, ""
        keep = {k: v[0] for k, v in req.query.items() if k not in ("page", "done") and v}

        def link(n: int, text: str) -> str:
            if n == page:
                return f"<b>{text}</b>"
            return f'<a href="?{e(urlencode({**keep, "page": n}))}">{text}</a>'
        shown = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
        items = []
        if page > 1:
            items.append(link(page - 1, "‹ previous"))
        prev = 0
        for n in shown:
            if n > prev + 1:
                items.append("…")
            items.append(link(n, str(n)))
            prev = n
        if page < pages:
            items.append(link(page + 1, "next ›"))
        html_ = (f'<nav class="pager" aria-label="pages">Page {page} of {pages:,} · '
                 f'{" ".join(items)}</nav>')
        return (page - 1) * per, per, html_

    # ------------------------------------------------------------------ dashboard

    def dashboard(self) -> str:
        s = self.stats()
        cards = "".join(
            f'<div class="card"><b data-stat="{key}">{s[key]:,}</b><span>{label}</span></div>'
            for key, label in (("processed", "processed"), ("failures", "failed"),
                               ("enqueued", "enqueued"), ("working", "busy"),
                               ("retries", "retries"), ("scheduled", "scheduled"),
                               ("dead", "dead"), ("connections", "connections")))
        queues = self.store.queue_sizes()
        rows = "".join(
            f'<tr><td><a href="/queues/{quote(name, safe="")}">{e(name)}</a></td>'
            f'<td class="num" data-queue="{e(name)}">{size:,}</td></tr>'
            for name, size in sorted(queues.items()))
        table = (('' if rows else '<p class="empty" id="no-queues">No queues yet.</p>') +
                 '<table id="queue-table"><thead><tr><th>queue</th><th class="num">size</th></tr></thead>'
                 f'<tbody>{rows}</tbody></table>')
        return (
            '<h1>Dashboard</h1>'
            f'<div class="cards">{cards}</div>'
            '<h2>Jobs per second</h2>'
            f'<div id="chart" data-poll="{self.poll_ms}"><div class="legend"><i class="lp"></i>processed '
            '<b data-rate="processed">–</b>/s <i class="lf"></i>failed <b data-rate="failed">–</b>/s</div>'
            '<div class="plot"></div><noscript><p class="muted">The live chart needs JavaScript; '
            'reload the page for new totals.</p></noscript></div>'
            f'<h2>Queues</h2>{table}')

    # ------------------------------------------------------------------ queues

    def queues(self, req: Request, token: str) -> str:
        store = self.store
        now = store.clock.now()
        rows = []
        for name, q in sorted(store.queues.items()):
            paused = name in store.paused
            qn = e(name)
            toggle = "resume" if paused else "pause"
            rows.append(
                f'<tr><td><a href="/queues/{quote(name, safe="")}">{qn}</a></td>'
                f'<td class="num">{len(q):,}</td><td class="num">{store.latency(name, now):,.1f} s</td>'
                f'<td>{_PAUSED if paused else _ACTIVE}</td>'
                f'<td><form class="inline" method="post" action="/queues">{self._csrf(token)}'
                f'<input type="hidden" name="queue" value="{qn}">'
                f'<button name="action" value="{toggle}">{toggle.capitalize()}</button> '
                f'<button name="action" value="clear" class="danger" title="delete every job waiting in {qn}">'
                f'Clear</button> <button name="action" value="remove" class="danger" '
                f'title="delete the jobs and forget the queue">Remove</button></form></td></tr>')
        if not rows:
            return '<h1>Queues</h1><p class="empty">No queues yet: push a job.</p>'
        all_form = (f'<form class="actions" method="post" action="/queues">{self._csrf(token)}'
                    '<input type="hidden" name="queue" value="*">'
                    '<button name="action" value="pause">Pause all</button>'
                    '<button name="action" value="resume">Resume all</button></form>')
        return ('<h1>Queues</h1>' + all_form +
                '<table><thead><tr><th>queue</th><th class="num">size</th><th class="num">latency</th>'
                f'<th>state</th><th>actions</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')

    def queue(self, req: Request, name: str, token: str) -> str:
        store = self.store
        q = store.queues.get(name)
        if q is None:
            return f'<h1>Queue {e(name)}</h1><p class="empty">No such queue. <a href="/queues">All queues</a></p>'
        now = store.clock.now()
        first, per, pager = self._pager(req, len(q))
        rows = []
        for rec in itertools.islice(q, first, first + per):
            job = _job(rec)
            rows.append(f'<tr><td><a href="/search?jid={quote(rec.jid, safe="")}"><code>{e(rec.jid)}</code></a></td>'
                        f'<td>{e(job.get("jobtype", ""))}</td><td><code>{e(short_json(job.get("args")))}</code></td>'
                        f'<td>{when(rec.enqueued_at, now)}</td></tr>')
        state = "paused" if name in store.paused else "active"
        table = ('<table><thead><tr><th>jid</th><th>type</th><th>args</th><th>enqueued</th></tr></thead>'
                 f'<tbody>{"".join(rows)}</tbody></table>' if rows else '<p class="empty">No jobs waiting.</p>')
        return (f'<h1>Queue {e(name)} <span class="tag {state}">{state}</span></h1>'
                f'<p class="muted">{len(q):,} jobs waiting · latency {store.latency(name, now):,.1f} s · '
                '<a href="/queues">all queues</a></p>' + pager + table + pager)

    def queues_action(self, req: Request) -> Response:
        store = self.store
        action = req.arg("action")
        names = req.args("queue")
        if action not in ("pause", "resume", "clear", "remove") or not names:
            return Response(400, "action must be pause, resume, clear or remove, with a queue\n")
        if "*" in names:
            names = sorted(store.queues)
        count = 0
        for name in names:
            if name not in store.queues:
                continue
            if action == "pause":
                store.pause(name)
            elif action == "resume":
                store.resume(name)
            elif action == "clear":
                count += store.clear_queue(name)
            else:
                count += len(store.queues[name])
                store.remove_queue(name)
        self._commit()
        what = ", ".join(names) if len(names) <= 3 else f"{len(names)} queues"
        done = {"pause": f"Paused {what}", "resume": f"Resumed {what}",
                "clear": f"Cleared {what}: {count:,} jobs deleted",
                "remove": f"Removed {what} ({count:,} jobs deleted)"}[action]
        return Response.redirect("/queues?" + urlencode({"done": done}))

    # ------------------------------------------------------------------ busy

    def busy(self, token: str) -> str:
        server = self.server
        store = self.store
        now = store.clock.now()
        running: dict[str, int] = {}
        for rec in store.working.values():
            running[rec.wid] = running.get(rec.wid, 0) + 1
        rows = []
        for w in server._workers.values():
            state = {0: "running", 1: "quiet", 2: "terminate"}[w.state]
            wid = e(w.wid)
            rows.append(
                f'<tr><td><code>{wid}</code></td><td>{e(w.hostname)}</td><td class="num">{w.pid}</td>'
                f'<td>{" ".join(f"<span class=tag>{e(label)}</span>" for label in w.labels)}</td>'
                f'<td><span class="tag {state}">{state}</span></td><td class="num">{running.get(w.wid, 0)}</td>'
                f'<td>{when(w.last_beat, now)}</td><td>{when(w.started_at, now)}</td>'
                f'<td><form class="inline" method="post" action="/busy">{self._csrf(token)}'
                f'<input type="hidden" name="wid" value="{wid}">'
                '<button name="signal" value="quiet">Quiet</button> '
                '<button name="signal" value="terminate" class="danger">Terminate</button></form></td></tr>')
        workers = ('<table><thead><tr><th>worker</th><th>hostname</th><th class="num">pid</th><th>labels</th>'
                   '<th>state</th><th class="num">busy</th><th>last beat</th><th>started</th><th>signal</th>'
                   f'</tr></thead><tbody>{"".join(rows)}</tbody></table>'
                   if rows else '<p class="empty">No worker is connected.</p>')
        all_form = (f'<form class="actions" method="post" action="/busy">{self._csrf(token)}'
                    '<input type="hidden" name="wid" value="all">'
                    '<button name="signal" value="quiet">Quiet all</button>'
                    '<button name="signal" value="terminate" class="danger">Terminate all</button></form>'
                    if rows else "")
        jobs = sorted(store.working.values(), key=lambda r: r.since)
        shown = jobs[:200]
        jrows = []
        for rec in shown:
            job = _job(rec)
            jrows.append(f'<tr><td><code>{e(rec.wid)}</code></td><td><code>{e(rec.jid)}</code></td>'
                         f'<td>{e(job.get("queue", ""))}</td><td>{e(job.get("jobtype", ""))}</td>'
                         f'<td><code>{e(short_json(job.get("args"), 80))}</code></td><td>{when(rec.since, now)}</td>'
                         f'<td>{when(rec.score, now)}</td></tr>')
        more = f'<p class="muted">…and {len(jobs) - len(shown):,} more.</p>' if len(jobs) > len(shown) else ""
        running_table = ('<table><thead><tr><th>worker</th><th>jid</th><th>queue</th><th>type</th><th>args</th>'
                         f'<th>started</th><th>reservation ends</th></tr></thead><tbody>{"".join(jrows)}</tbody></table>'
                         if jrows else '<p class="empty">No job is running.</p>')
        return (f'<h1>Busy</h1><h2>Workers ({len(rows)})</h2>{all_form}{workers}'
                f'<h2>Running jobs ({len(jobs):,})</h2>{running_table}{more}')

    def busy_action(self, req: Request) -> Response:
        server = self.server
        wid = req.arg("wid")
        signal = req.arg("signal")
        if signal not in ("quiet", "terminate"):
            return Response(400, "signal must be quiet or terminate\n")
        action = server.quiet_worker if signal == "quiet" else server.terminate_worker
        wids = list(server._workers) if wid == "all" else [wid]
        for one in wids:
            try:
                action(one)
            except KeyError:
                return Response.redirect("/busy?" + urlencode({"done": f"No worker {wid} (gone?)"}))
        what = "every worker" if wid == "all" else wid
        return Response.redirect("/busy?" + urlencode({"done": f"Signalled {signal} to {what}"}))

    # ------------------------------------------------------------------ retries / scheduled / dead

    def _set(self, name: str) -> SortedSet:
        sets: dict[str, SortedSet] = {"retries": self.store.retries, "scheduled": self.store.scheduled,
                                      "dead": self.store.dead}
        return sets[name]

    @staticmethod
    def _filtered(sset: SortedSet, needle: str) -> list[JobRecord]:
        recs = sset.ordered()
        if needle:
            raw = needle.lower().encode("utf-8", "surrogateescape")
            recs = [r for r in recs if raw in r.payload.lower()]
        return recs

    @staticmethod
    def _time_of(name: str, rec: JobRecord) -> float:
        return rec.score - DEAD_TTL if name == "dead" else rec.score

    def job_set(self, req: Request, name: str, token: str) -> str:
        sset = self._set(name)
        now = self.store.clock.now()
        needle = req.arg("q")
        recs = self._filtered(sset, needle)
        first, per, pager = self._pager(req, len(recs))
        time_label = {"retries": "next retry", "scheduled": "runs", "dead": "died"}[name]
        rows = []
        for rec in recs[first:first + per]:
            job = _job(rec)
            failure = job.get("failure") or {}
            err = ""
            if failure:
                err = (f'<span class="tag err">{e(failure.get("errtype", ""))}</span> '
                       f'{e(short_json(failure.get("message", ""), 100)[1:-1])}')
            rows.append(
                f'<tr><td><input type="checkbox" name="key" value="{rec.rid}" aria-label="select {e(rec.jid)}"></td>'
                f'<td>{when(self._time_of(name, rec), now)}</td>'
                f'<td><a href="/{name}/{rec.rid}"><code>{e(rec.jid)}</code></a></td>'
                f'<td>{e(job.get("queue", ""))}</td><td>{e(job.get("jobtype", ""))}</td>'
                f'<td><code>{e(short_json(job.get("args"), 80))}</code></td>'
                + (f'<td class="num">{failure.get("retry_count", 0)}</td><td>{err}</td>' if name != "scheduled" else "")
                + '</tr>')
        title = _TITLES[name]
        search = (f'<form class="bar" method="get" action="/{name}"><input type="search" name="q" '
                  f'value="{e(needle)}" placeholder="Filter: any text of the job" aria-label="filter">'
                  f'<button>Filter</button>{" <a href=/" + name + ">clear filter</a>" if needle else ""}'
                  f'<span class="muted">{len(recs):,} of {len(sset):,} jobs</span></form>')
        if not rows:
            empty = "No job matches the filter." if needle else f"No jobs in {title.lower()}."
            return f'<h1>{title}</h1>{search}<p class="empty">{empty}</p>'
        buttons = ['<button name="action" value="retry" class="primary">'
                   f'{"Enqueue now" if name == "scheduled" else "Retry now"}</button>',
                   '<button name="action" value="delete" class="danger">Delete</button>']
        if name != "dead":
            buttons.append('<button name="action" value="kill" class="danger">Kill</button>')
        scope = "matching jobs" if needle else "jobs"
        all_buttons = [b.replace('name="action"', 'name="all"').replace("</button>", f" all {len(recs):,} {scope}</button>")
                       for b in buttons]
        hidden_q = f'<input type="hidden" name="q" value="{e(needle)}">' if needle else ""
        head = (f'<th></th><th>{time_label}</th><th>jid</th><th>queue</th><th>type</th><th>args</th>'
                + ('<th class="num">retries</th><th>error</th>' if name != "scheduled" else ""))
        return (f'<h1>{title}</h1>{search}'
                f'<form method="post" action="/{name}">{self._csrf(token)}{hidden_q}'
                f'<div class="actions"><span class="muted">Selected:</span>{"".join(buttons)}</div>'
                f'{pager}<table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{pager}'
                f'<div class="actions"><span class="muted">Every one:</span>{"".join(all_buttons)}</div></form>')

    def job_detail(self, req: Request, name: str, key: str, token: str) -> str | None:
        try:
            rid = int(key)
        except ValueError:
            return None
        rec = self.store.find(self._set(name), rid)
        if rec is None:
            return None
        now = self.store.clock.now()
        job = _job(rec)
        failure = job.get("failure") or {}
        fields = []
        for label, value in (("jid", job.get("jid")), ("type", job.get("jobtype")),
                             ("queue", job.get("queue")),
                             ("args", short_json(job.get("args"), 400)),
                             ("created", job.get("created_at")), ("enqueued", job.get("enqueued_at")),
                             ("at", job.get("at")), ("retry", job.get("retry")),
                             ("reserve for", job.get("reserve_for")),
                             ("custom", short_json(job["custom"], 400) if job.get("custom") else None)):
            if value not in (None, ""):
                fields.append(f"<dt>{label}</dt><dd><code>{e(value)}</code></dd>")
        time_label = {"retries": "next retry", "scheduled": "runs", "dead": "died"}[name]
        fields.append(f"<dt>{time_label}</dt><dd>{when(self._time_of(name, rec), now)}</dd>")
        fail_html = ""
        if failure:
            rows = [f"<dt>error</dt><dd><span class=\"tag err\">{e(failure.get('errtype', ''))}</span> "
                    f"{e(failure.get('message', ''))}</dd>",
                    f"<dt>failed at</dt><dd>{e(failure.get('failed_at', ''))}</dd>",
                    f"<dt>retries</dt><dd>{failure.get('retry_count', 0)} done, "
                    f"{failure.get('remaining', 0)} left</dd>"]
            if failure.get("next_at"):
                rows.append(f"<dt>next at</dt><dd>{e(failure['next_at'])}</dd>")
            trace = failure.get("backtrace") or []
            fail_html = (f'<h2>Failure</h2><dl>{"".join(rows)}</dl>'
                         + (f'<h2>Backtrace</h2><pre>{e(chr(10).join(map(str, trace)))}</pre>' if trace else ""))
        buttons = ['<button name="action" value="retry" class="primary">'
                   f'{"Enqueue now" if name == "scheduled" else "Retry now"}</button>',
                   '<button name="action" value="delete" class="danger">Delete</button>']
        if name != "dead":
            buttons.append('<button name="action" value="kill" class="danger">Kill</button>')
        return (f'<h1>{e(job.get("jobtype", "Job"))} <code>{e(rec.jid)}</code></h1>'
                f'<p class="muted">In <a href="/{name}">{_TITLES[name].lower()}</a></p>'
                f'<form class="actions" method="post" action="/{name}/{rec.rid}">{self._csrf(token)}'
                f'{"".join(buttons)}</form>'
                f'<dl>{"".join(fields)}</dl>{fail_html}'
                f'<h2>Payload</h2><pre>{e(json.dumps(job, indent=2, ensure_ascii=False))}</pre>')

    def set_action(self, req: Request, name: str, key: str | None) -> Response:
        store = self.store
        sset = self._set(name)
        action = req.arg("action") or req.arg("all")
        every = bool(req.arg("all"))
        if action not in ("retry", "delete", "kill") or (action == "kill" and name == "dead"):
            return Response(400, "action must be retry, delete or kill (kill: not in the dead set)\n")
        if key is not None:
            keys = [key]
        elif every:
            recs: Iterable[JobRecord] = self._filtered(sset, req.arg("q"))
            keys = []
        else:
            keys = req.args("key")
            if not keys:
                return Response.redirect(f"/{name}?" + urlencode({"done": "Nothing selected"}))
        if keys:
            wanted = set()
            for k in keys:
                try:
                    wanted.add(int(k))
                except ValueError:
                    return Response(400, f"bad job key {k!r}\n")
            recs = [r for r in sset.members.values() if r.rid in wanted]
        now = store.clock.now()
        count, failed = 0, []
        for rec in list(recs):
            if action == "retry":
                error = store.requeue(sset, rec)
                if error is None:
                    count += 1
                else:
                    failed.append(f"{rec.jid}: {error}")
            elif action == "delete":
                count += store.discard(sset, rec)
            else:
                count += store.kill(sset, rec, now)
        self._commit()
        done = f"{count:,} job{'s' if count != 1 else ''} {_ACTION_DONE[action]}"
        if failed:
            done += f"; {len(failed)} could not be: {failed[0]}"
        back = f"/{name}"
        if key is None and req.arg("q") and not every:
            back += "?" + urlencode({"q": req.arg("q")}) + "&"
        else:
            back += "?"
        return Response.redirect(back + urlencode({"done": done}))

    # ------------------------------------------------------------------ search

    def search(self, req: Request) -> str:
        jid = req.arg("jid").strip()
        form = (f'<form class="bar" method="get" action="/search"><input type="search" name="jid" value="{e(jid)}" '
                'placeholder="jid" aria-label="jid"><button>Find</button></form>')
        if not jid:
            return f"<h1>Find a job</h1>{form}"
        store = self.store
        now = store.clock.now()
        found: list[tuple[str, str, JobRecord]] = []
        for qname, q in store.queues.items():
            for rec in q:
                if rec.jid == jid:
                    found.append((f"queue {qname}", f"/queues/{quote(qname, safe='')}", rec))
        for rec in store.working.values():
            if rec.jid == jid:
                found.append((f"running on {rec.wid or 'a client'}", "/busy", rec))
        for name in SETS:
            for rec in self._set(name).members.values():
                if rec.jid == jid:
                    found.append((_TITLES[name].lower(), f"/{name}/{rec.rid}", rec))
        if not found:
            return (f'<h1>Find a job</h1>{form}<p class="empty">No job <code>{e(jid)}</code> is waiting, '
                    'running, scheduled, retrying or dead (finished jobs are not kept).</p>')
        rows = []
        for where, href, rec in found:
            job = _job(rec)
            rows.append(f'<tr><td><a href="{e(href)}">{e(where)}</a></td><td>{e(job.get("jobtype", ""))}</td>'
                        f'<td><code>{e(short_json(job.get("args"), 80))}</code></td>'
                        f'<td>{when(rec.since or rec.enqueued_at, now) if rec.since or rec.enqueued_at else ""}'
                        '</td></tr>')
        return (f'<h1>Find a job</h1>{form}<p class="muted">{len(found)} found for <code>{e(jid)}</code></p>'
                '<table><thead><tr><th>where</th><th>type</th><th>args</th><th>since</th></tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table>')

    # ------------------------------------------------------------------ helpers

    def _commit(self) -> None:
        self.server.persistence.commit()
