#!/usr/bin/env python3
"""A deliberately naive second implementation of docs/contract.md, used to
cross-check cxpulse replay on generated data (tests/tools/crosscheck.sh).

No panes, no sketches, no incremental tricks: every window keeps the list of
observations it accepted, snapshots are taken eagerly at every boundary the
processing clock crosses, quantiles are exact nearest rank. Slow, simple.

Usage: reference.py CONFIG.toml EVENTS.jsonl > KPIS.jsonl
"""
import heapq, json, math, re, sys, tomllib
from datetime import datetime, timezone

US = 1_000_000
def dur(s):
    total = 0
    for n, u in re.findall(r"(\d+)(ms|us|s|m|h|d)", s):
        total += int(n) * {"us": 1, "ms": 1000, "s": US, "m": 60 * US, "h": 3600 * US, "d": 86400 * US}[u]
    return total

def name(size):
    for unit, n in (("h", 3600 * US), ("m", 60 * US), ("s", US)):
        if size % n == 0:
            return f"{size // n}{unit}"

KPIS = {  # name: (kind, dims)
    "tickets_opened": ("count", "CR"), "first_reply_time_seconds": ("dist", "CRA"),
    "first_resolution_time_seconds": ("dist", "CRA"), "fcr_rate": ("ratio", "CRA"),
    "reopen_rate": ("ratio", "CR"), "chats_requested": ("count", "R"),
    "chat_wait_time_seconds": ("dist", "RA"), "chat_abandonment_rate": ("ratio", "R"),
    "chat_service_level": ("ratio", "R"), "chat_handle_time_seconds": ("dist", "RA"),
    "csat_rate": ("ratio", "CRA"), "csat_mean": ("mean", "CRA"), "nps": ("nps", "CRA"),
    "ces_mean": ("mean", "CRA"), "checkouts_started": ("count", "CR"),
    "orders_completed": ("count", "CR"), "revenue": ("sum", "CR"),
    "average_order_value": ("mean", "CR"), "checkout_conversion_rate": ("ratio", "CR"),
    "cart_abandonment_rate": ("ratio", "CR"), "churn_rate": ("churn", "R"), "renewal_rate": ("ratio", "R"),
}
DIMLETTER = {"channel": "C", "region": "R", "agent_id": "A"}

def parse_ts(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v * 1000
    if isinstance(v, str):
        if not re.match(r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$", v):
            return None
        try:
            d = datetime.fromisoformat(v.replace("z", "Z"))
        except ValueError:
            return None
        frac = re.search(r"\.(\d+)", v)
        micros = int((frac.group(1) + "000000")[:6]) if frac else 0
        return int(d.replace(microsecond=0).timestamp()) * US + micros
    return None

REQ = {"ticket.opened": ["ticket_id", "customer_id", "channel"], "ticket.replied": ["ticket_id", "author"],
       "ticket.resolved": ["ticket_id"], "ticket.reopened": ["ticket_id"], "chat.requested": ["chat_id", "customer_id"],
       "chat.agent_joined": ["chat_id", "agent_id"], "chat.ended": ["chat_id"],
       "survey.submitted": ["survey", "customer_id"], "checkout.started": ["checkout_id", "customer_id"],
       "checkout.completed": ["checkout_id", "order_id"], "subscription.started": ["subscription_id", "customer_id"],
       "subscription.renewed": ["subscription_id"], "subscription.cancelled": ["subscription_id"]}

def validate(line):
    try:
        e = json.loads(line)
    except Exception:
        return None
    if not isinstance(e, dict):
        return None
    g = lambda k: e.get(k)
    if not isinstance(g("event_id"), str) or g("event_id") == "":
        return None
    t = g("type")
    if t not in REQ:
        return None
    ts = parse_ts(g("ts"))
    if ts is None:
        return None
    for k in ("region", "channel", "agent_id"):
        if g(k) is not None and not isinstance(g(k), str):
            return None
    for k in REQ[t]:
        if not isinstance(g(k), str):
            return None
    if t == "ticket.replied":
        if g("author") not in ("agent", "customer", "bot"):
            return None
        if g("author") == "agent" and not isinstance(g("agent_id"), str):
            return None
        if g("public") is not None and not isinstance(g("public"), bool):
            return None
    if t == "survey.submitted":
        s = g("score")
        lo, hi = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}.get(g("survey"), (None, None))
        if lo is None or not isinstance(s, int) or isinstance(s, bool) or not lo <= s <= hi:
            return None
    if t == "checkout.completed":
        v = g("value")
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            return None
    e["_ts"] = ts
    return e

class Ref:
    def __init__(self, cfg):
        en, k = cfg["engine"], cfg["kpi"]
        self.ooo, self.late = dur(en["max_out_of_orderness"]), dur(en["allowed_lateness"])
        self.horizon = dur(en["dedup_horizon"])
        self.sets = en["grouping_sets"]
        self.specs = [(dur(w["size"]), dur(w.get("step", w["size"]))) for w in en["windows"]]
        self.sl, self.short, self.cart = dur(k["service_level_threshold"]), dur(k["short_abandon_threshold"]), dur(k["cart_abandon_after"])
        self.W = -2**62
        self.maxts = None
        self.seen = {}
        self.buf = []
        self.timers = []
        self.seq = 0
        self.tickets, self.chats, self.carts, self.subs = {}, {}, {}, {}
        self.active = {}  # region -> count
        self.snap = {}  # boundary -> {region: count}
        self.crossed = None  # last boundary-crossing clock
        self.win = {}  # (spec, start) -> list of obs
        self.fired_through = [-2**62] * len(self.specs)
        self.revs = {}
        self.out = []
        self.dirty = []

    def boundaries_upto(self, t, inclusive):
        steps = [s for _, s in self.specs]
        g = steps[0]
        for s in steps[1:]:
            g = math.gcd(g, s)
        lo = self.crossed if self.crossed is not None else t - 1
        b = (lo // g + 1) * g if self.crossed is not None else ((t - 1) // g + 1) * g
        while b < t or (inclusive and b <= t):
            if any(b % s == 0 for s in steps):
                self.snap[b] = dict(self.active)
            b += g
        self.crossed = max(self.crossed if self.crossed is not None else -2**62, t if inclusive else t - 1)

    def observe(self, t, kpi, dims, upd):
        for i, (size, step) in enumerate(self.specs):
            start = (t // step) * step
            while start > t - size:
                end = start + size
                if end <= self.fired_through[i] and end + self.late <= self.W:
                    pass
                else:
                    self.win.setdefault((i, start), []).append((kpi, dims, upd))
                    if end <= self.fired_through[i]:
                        self.dirty.append((i, start))
                start -= step

    def rows(self, i, start):
        size, _ = self.specs[i]
        groups = {}
        for kpi, dims, upd in self.win.get((i, start), []):
            kind, kd = KPIS[kpi]
            for si, gs in enumerate(self.sets):
                if all(DIMLETTER[d] in kd for d in gs):
                    key = (kpi, si, tuple(dims[d] for d in gs))
                    groups.setdefault(key, []).append(upd)
        res = []
        for (kpi, si, vals), ups in groups.items():
            kind, _ = KPIS[kpi]
            rec = {"kpi": kpi, "window": name(size), "window_start": start, "window_end": start + size,
                   "group": dict(zip(self.sets[si], vals))}
            n = sum(1 for u in ups if u[0] in ("n", "v", "hit"))
            num = sum(1 for u in ups if (u[0] == "hit" and u[1]) or u[0] == "num")
            vals_ = [u[1] for u in ups if u[0] == "v"]
            if kind == "churn":
                reg = rec["group"].get("region")
                s = self.snap.get(start, {})
                base = s.get(reg, 0) if reg is not None else sum(s.values())
                if num == 0 or base == 0:
                    continue
                rec.update(value=num / base, count=base, numerator=num)
            elif n == 0:
                continue
            elif kind == "count":
                rec.update(value=n, count=n)
            elif kind == "ratio":
                rec.update(value=num / n, count=n, numerator=num)
            elif kind == "mean":
                rec.update(value=sum(vals_) / n, count=n)
            elif kind == "sum":
                rec.update(value=sum(vals_), count=n)
            elif kind == "nps":
                rec.update(value=100 * sum(vals_) / n, count=n)
            elif kind == "dist":
                xs = sorted(vals_)
                q = lambda p: xs[max(1, math.ceil(p * n)) - 1]
                rec.update(value=sum(xs) / n, count=n, quantiles={"p50": q(0.5), "p90": q(0.9), "p99": q(0.99)})
            res.append(rec)
        return res

    def emit(self, i, start):
        for r in self.rows(i, start):
            k = (r["kpi"], r["window"], start, json.dumps(r["group"], sort_keys=True))
            old = self.revs.get(k)
            if old is not None and old[1] == r:
                continue
            rev = 0 if old is None else old[0] + 1
            self.revs[k] = (rev, r)
            self.out.append(dict(r, revision=rev))

    def apply(self, e):
        t, ty = e["_ts"], e["type"]
        reg, ch = e.get("region") or "unknown", e.get("channel") or "unknown"
        D = lambda c="unknown", r="unknown", a="unknown": {"channel": c, "region": r, "agent_id": a}
        o = lambda k, d, u, at=t: self.observe(at, k, d, u)
        if ty == "ticket.opened":
            o("tickets_opened", D(ch, reg), ("n",))
            self.tickets.setdefault(e["ticket_id"], dict(at=t, c=ch, r=reg, replies=0, fr=False, ever=False, res=False))
        elif ty.startswith("ticket."):
            s = self.tickets.get(e["ticket_id"])
            if s is None:
                return
            if ty == "ticket.replied":
                if e["author"] == "agent" and e.get("public", True) is not False:
                    if not s["fr"]:
                        s["fr"] = True
                        o("first_reply_time_seconds", D(s["c"], s["r"], e["agent_id"]), ("v", (t - s["at"]) / US))
                    if not s["ever"]:
                        s["replies"] += 1
            elif ty == "ticket.resolved":
                if not s["res"]:
                    s["res"] = True
                    o("reopen_rate", D(s["c"], s["r"]), ("hit", False))
                    if not s["ever"]:
                        s["ever"] = True
                        d = D(s["c"], s["r"], e.get("agent_id") or "unknown")
                        o("first_resolution_time_seconds", d, ("v", (t - s["at"]) / US))
                        o("fcr_rate", d, ("hit", s["replies"] <= 1))
            elif ty == "ticket.reopened" and s["res"]:
                s["res"] = False
                o("reopen_rate", D(s["c"], s["r"]), ("num",))
        elif ty == "chat.requested":
            o("chats_requested", D(r=reg), ("n",))
            self.chats.setdefault(e["chat_id"], dict(at=t, r=reg, join=None, ended=False))
        elif ty.startswith("chat."):
            s = self.chats.get(e["chat_id"])
            if s is None:
                return
            if ty == "chat.agent_joined" and s["join"] is None and not s["ended"]:
                s["join"] = (t, e["agent_id"])
                w = t - s["at"]
                o("chat_wait_time_seconds", D(r=s["r"], a=e["agent_id"]), ("v", w / US))
                o("chat_abandonment_rate", D(r=s["r"]), ("hit", False))
                o("chat_service_level", D(r=s["r"]), ("hit", w <= self.sl))
            elif ty == "chat.ended" and not s["ended"]:
                s["ended"] = True
                if s["join"] is not None:
                    o("chat_handle_time_seconds", D(r=s["r"], a=s["join"][1]), ("v", (t - s["join"][0]) / US))
                elif t - s["at"] >= self.short:
                    o("chat_abandonment_rate", D(r=s["r"]), ("hit", True))
                    o("chat_service_level", D(r=s["r"]), ("hit", False))
        elif ty == "survey.submitted":
            d, sc = D(ch, reg, e.get("agent_id") or "unknown"), e["score"]
            if e["survey"] == "csat":
                o("csat_rate", d, ("hit", sc >= 4))
                o("csat_mean", d, ("v", sc))
            elif e["survey"] == "nps":
                o("nps", d, ("v", 1 if sc >= 9 else (-1 if sc <= 6 else 0)))
            else:
                o("ces_mean", d, ("v", sc))
        elif ty == "checkout.started":
            o("checkouts_started", D(ch, reg), ("n",))
            o("checkout_conversion_rate", D(ch, reg), ("hit", False))
            if e["checkout_id"] not in self.carts:
                self.carts[e["checkout_id"]] = dict(c=ch, r=reg, out=None)
                self.seq += 1
                due = t + self.cart
                if due < self.clock:
                    self.fire_timer(due, e["checkout_id"])
                else:
                    heapq.heappush(self.timers, (due, self.seq, e["checkout_id"]))
        elif ty == "checkout.completed":
            s = self.carts.get(e["checkout_id"])
            if s is None:
                return
            d = D(ch, reg)
            o("orders_completed", d, ("n",))
            o("revenue", d, ("v", e["value"]))
            o("average_order_value", d, ("v", e["value"]))
            o("checkout_conversion_rate", d, ("num",))
            if s["out"] is None:
                s["out"] = "completed"
                o("cart_abandonment_rate", D(s["c"], s["r"]), ("hit", False))
        elif ty == "subscription.started":
            if e["subscription_id"] not in self.subs:
                self.subs[e["subscription_id"]] = dict(r=reg, active=True)
                self.active[reg] = self.active.get(reg, 0) + 1
        else:
            s = self.subs.get(e["subscription_id"])
            if s is None or not s["active"]:
                return
            if ty == "subscription.renewed":
                o("renewal_rate", D(r=s["r"]), ("hit", True))
            else:
                s["active"] = False
                self.active[s["r"]] -= 1
                o("churn_rate", D(r=s["r"]), ("num",))
                o("renewal_rate", D(r=s["r"]), ("hit", False))

    def fire_timer(self, due, cid):
        s = self.carts[cid]
        if s["out"] is None:
            s["out"] = "abandoned"
            self.observe(due, "cart_abandonment_rate", {"channel": s["c"], "region": s["r"], "agent_id": "unknown"}, ("hit", True))

    def next_end(self, limit):
        best = None
        for (i, start), obs in self.win.items():
            end = start + self.specs[i][0]
            if obs and end > self.fired_through[i] and end <= limit and (best is None or end < best):
                best = end
        return best

    clock = -2**62

    def advance(self, W):
        if W <= self.clock:
            return
        while True:
            cands = []
            if self.buf and self.buf[0][0] < W:
                cands.append(self.buf[0][0])
            if self.timers and self.timers[0][0] < W:
                cands.append(self.timers[0][0])
            ne = self.next_end(W)
            if ne is not None:
                cands.append(ne)
            if not cands:
                break
            t = min(cands)
            if ne == t:
                self.boundaries_upto(t, inclusive=True)
                for i, (size, step) in enumerate(self.specs):
                    if t % step == 0 and t > self.fired_through[i] and (i, t - size) in self.win:
                        self.emit(i, t - size)
                    if t % step == 0:
                        self.fired_through[i] = max(self.fired_through[i], t)
                continue
            self.boundaries_upto(t, inclusive=True)
            self.clock = t
            while self.buf and self.buf[0][0] == t:
                self.apply(heapq.heappop(self.buf)[2])
            while self.timers and self.timers[0][0] == t:
                due, _, cid = heapq.heappop(self.timers)
                self.fire_timer(due, cid)
        if W < 2**62:
            self.boundaries_upto(W, inclusive=True)
        self.clock = W
        for i in range(len(self.specs)):
            self.fired_through[i] = max(self.fired_through[i], W)

    def ingest(self, e):
        ts, eid = e["_ts"], e["event_id"]
        if eid in self.seen and abs(ts - self.seen[eid]) <= self.horizon:
            return
        self.seen[eid] = ts
        if ts < self.W:
            self.dirty = []
            self.apply(e)
            for key in sorted(set(self.dirty)):
                self.emit(*key)
        else:
            self.seq += 1
            heapq.heappush(self.buf, (ts, self.seq, e))
        self.maxts = ts if self.maxts is None else max(self.maxts, ts)
        self.W = max(self.W, self.maxts - self.ooo)
        self.advance(self.W)

def fmt(t):
    return datetime.fromtimestamp(t // US, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

def main():
    defaults = tomllib.load(open(sys.argv[3] if len(sys.argv) > 3 else "config/default.toml", "rb"))
    user = tomllib.load(open(sys.argv[1], "rb"))
    for sec, vals in user.items():
        defaults.setdefault(sec, {}).update(vals)
    ref = Ref(defaults)
    for line in open(sys.argv[2], encoding="utf-8", errors="replace"):
        if not line.strip():
            continue
        e = validate(line)
        if e is not None:
            ref.ingest(e)
    ref.advance(2**62)
    for r in ref.out:
        r["window_start"], r["window_end"] = fmt(r["window_start"]), fmt(r["window_end"])
        print(json.dumps(r))

main()
