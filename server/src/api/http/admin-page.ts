/**
 * The built-in admin view (docs/protocol.md#admin-metrics-and-health): dtm's All Transactions, Transaction Detail and Topics
 * pages as one static HTML page, one script and one stylesheet. They are string constants so `tsc`
 * puts them in `dist/` with nothing to copy. The script is plain browser JS with no dependencies;
 * every value from the API goes through `textContent`, never through HTML parsing, because gids,
 * URLs and topic values are whatever a client sent.
 */

/** The API routes the script calls, and the query it uses for the list (tests call exactly these). */
export const ADMIN_API = {
  version: "/api/dtmsvr/version",
  all: "/api/dtmsvr/all",
  query: "/api/dtmsvr/query",
  forceStop: "/api/dtmsvr/forceStop",
  resetNextCronTime: "/api/dtmsvr/resetNextCronTime",
  scanKV: "/api/dtmsvr/scanKV",
  /** Transactions per list page (`limit` of `all`); the page follows `next_position`. */
  pageSize: 20,
  /** `cat` of `scanKV` for the Topics view. */
  topicsCat: "topics",
} as const;

export const ADMIN_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dtx admin</title>
<link rel="stylesheet" href="/admin/style.css">
<script src="/admin/app.js" defer></script>
</head>
<body>
<header>
<strong>dtx admin</strong>
<nav><a href="#/">All Transactions</a> <a href="#/topics">Topics</a></nav>
<span id="version"></span>
<label>token <input id="token" type="password" size="20" autocomplete="off" placeholder="admin token, if auth is on"></label>
</header>
<main id="main"><p>Loading…</p></main>
</body>
</html>
`;

export const ADMIN_CSS = `body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }
header { display: flex; gap: 1.5em; align-items: center; padding: .6em 1em; background: #1f2d3d; color: #fff; }
header a { color: #cfe3ff; margin-right: 1em; }
#version { margin-left: auto; opacity: .7; }
#token { padding: .2em; }
main { padding: 1em; }
.filters { display: flex; flex-wrap: wrap; gap: .5em; margin-bottom: .8em; }
.filters input, .filters select { padding: .25em; }
table { border-collapse: collapse; width: 100%; margin-bottom: .8em; }
th, td { border: 1px solid #ddd; padding: .3em .5em; text-align: left; vertical-align: top; }
th { background: #f4f6f8; }
td { word-break: break-all; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; }
dt { font-weight: 600; }
dd { margin: 0; word-break: break-all; }
button { padding: .3em .8em; margin-right: .5em; cursor: pointer; }
.result { margin: .6em 0; padding: .4em .6em; border-radius: 3px; }
.ok { background: #e7f6e7; }
.err { background: #fdeaea; color: #900; }
`;

export const ADMIN_JS = String.raw`"use strict";
(function () {
  var API = ${JSON.stringify(ADMIN_API)};
  var main = document.getElementById("main");

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function text(v) { return v === null || v === undefined ? "" : String(v); }
  function show(children) {
    main.replaceChildren.apply(main, children);
  }
  function errorText(status, body) {
    if (body && body.message) return "HTTP " + status + ": " + body.message + (body.code ? " (" + body.code + ")" : "");
    return "HTTP " + status;
  }
  // The bearer token (auth on): kept in this tab's sessionStorage only, sent on every API call.
  var TOKEN_KEY = "dtx-admin-token";
  function storedToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }
  function storeToken(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage off: the token lasts until the page is left */ }
  }
  var tokenInput = document.getElementById("token");
  var token = storedToken();
  tokenInput.value = token;
  tokenInput.addEventListener("change", function () {
    token = tokenInput.value.trim();
    storeToken(token);
    loadVersion();
    route();
  });
  function call(method, path, params, body) {
    var url = path + (params ? "?" + new URLSearchParams(params).toString() : "");
    var init = { method: method, headers: {} };
    if (token) init.headers["authorization"] = "Bearer " + token;
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (json) {
        if (!res.ok) throw new Error(errorText(res.status, json));
        return json;
      });
    });
  }
  function failure(err) { return el("p", { class: "result err" }, [String(err && err.message || err)]); }

  function table(columns, rows, cell) {
    var head = el("tr", {}, columns.map(function (c) { return el("th", {}, [c]); }));
    var body = rows.map(function (r) {
      return el("tr", {}, columns.map(function (c) { return el("td", {}, [cell(r, c)]); }));
    });
    return el("table", {}, [el("thead", {}, [head]), el("tbody", {}, body)]);
  }

  // All Transactions: filters and pages that follow next_position.
  var TRANS_COLUMNS = ["gid", "trans_type", "status", "protocol", "create_time", "update_time", "finish_time", "rollback_time", "next_cron_time"];
  var STATUSES = ["", "prepared", "submitted", "aborting", "succeed", "failed"];
  var TYPES = ["", "saga", "msg", "tcc", "xa", "workflow"];
  var filters = { gid: "", status: "", transType: "" };
  var positions = [""];

  function select(options, value) {
    var s = el("select", {}, options.map(function (o) { return el("option", { value: o }, [o || "(any)"]); }));
    s.value = value;
    return s;
  }
  function listPage() {
    var gid = el("input", { placeholder: "gid", size: "30" });
    gid.value = filters.gid;
    var status = select(STATUSES, filters.status);
    var type = select(TYPES, filters.transType);
    var search = el("button", { type: "button" }, ["Search"]);
    function apply() {
      filters = { gid: gid.value.trim(), status: status.value, transType: type.value };
      positions = [""];
      loadList();
    }
    search.addEventListener("click", apply);
    gid.addEventListener("keydown", function (e) { if (e.key === "Enter") apply(); });
    var bar = el("div", { class: "filters" }, ["gid ", gid, " status ", status, " trans type ", type, search]);
    var out = el("div", {}, [el("p", {}, ["Loading…"])]);
    show([el("h2", {}, ["All Transactions"]), bar, out]);

    function loadList() {
      var params = { position: positions[positions.length - 1], limit: String(API.pageSize) };
      Object.keys(filters).forEach(function (k) { if (filters[k]) params[k] = filters[k]; });
      call("GET", API.all, params).then(function (r) {
        var rows = r.transactions || [];
        var t = table(TRANS_COLUMNS, rows, function (row, c) {
          if (c === "gid") return el("a", { href: "#/trans/" + encodeURIComponent(row.gid) }, [text(row.gid)]);
          return document.createTextNode(text(row[c]));
        });
        var prev = el("button", { type: "button" }, ["Previous page"]);
        prev.disabled = positions.length < 2;
        prev.addEventListener("click", function () { positions.pop(); loadList(); });
        var next = el("button", { type: "button" }, ["Next page"]);
        next.disabled = !r.next_position || !!filters.gid;
        next.addEventListener("click", function () { positions.push(r.next_position); loadList(); });
        out.replaceChildren(rows.length ? t : el("p", {}, ["No transactions."]), prev, next);
      }).catch(function (e) { out.replaceChildren(failure(e)); });
    }
    loadList();
  }

  // Transaction Detail: global fields, branches, Force Stop and Reset next cron time.
  var BRANCH_COLUMNS = ["branch_id", "op", "status", "create_time", "update_time", "url"];
  function detailPage(gid) {
    var result = el("div", {}, []);
    show([el("h2", {}, ["Transaction ", el("code", {}, [gid])]), el("p", {}, ["Loading…"])]);
    function action(label, path, question) {
      var b = el("button", { type: "button" }, [label]);
      b.addEventListener("click", function () {
        if (!window.confirm(question + " " + gid + "?")) return;
        call("POST", path, undefined, { gid: gid }).then(function (r) {
          result.replaceChildren(el("p", { class: "result ok" }, [label + ": " + text(r && r.dtm_result || "done")]));
          load();
        }).catch(function (e) { result.replaceChildren(failure(e)); });
      });
      return b;
    }
    function load() {
      call("GET", API.query, { gid: gid }).then(function (r) {
        var t = r.transaction;
        if (!t) { show([el("h2", {}, ["Transaction ", el("code", {}, [gid])]), el("p", { class: "result err" }, ["No such transaction."])]); return; }
        var fields = el("dl", {}, []);
        Object.keys(t).forEach(function (k) {
          fields.appendChild(el("dt", {}, [k]));
          fields.appendChild(el("dd", {}, [typeof t[k] === "object" && t[k] !== null ? JSON.stringify(t[k]) : text(t[k])]));
        });
        var buttons = el("div", {}, [
          action("Force Stop", API.forceStop, "Force stop (set status failed)"),
          action("Reset next cron time", API.resetNextCronTime, "Retry now"),
        ]);
        show([
          el("h2", {}, ["Transaction ", el("code", {}, [gid])]),
          buttons, result, fields,
          el("h3", {}, ["Branches"]),
          table(BRANCH_COLUMNS, r.branches || [], function (row, c) { return document.createTextNode(text(row[c])); }),
        ]);
      }).catch(function (e) { show([el("h2", {}, ["Transaction ", el("code", {}, [gid])]), failure(e)]); });
    }
    load();
  }

  // Topics: every kv entry of cat=topics with its subscribers.
  function topicsPage() {
    show([el("h2", {}, ["Topics"]), el("p", {}, ["Loading…"])]);
    var kv = [];
    function more(position) {
      return call("GET", API.scanKV, { cat: API.topicsCat, position: position, limit: "100" }).then(function (r) {
        kv = kv.concat(r.kv || []);
        return r.next_position && kv.length < 10000 ? more(r.next_position) : kv;
      });
    }
    more("").then(function (entries) {
      var rows = entries.map(function (e) {
        var subs;
        try { subs = JSON.parse(e.v); } catch (err) { subs = null; }
        var list = Array.isArray(subs)
          ? el("ul", {}, subs.map(function (s) { return el("li", {}, [text(s && s.url) + (s && s.remark ? " (" + s.remark + ")" : "")]); }))
          : document.createTextNode(text(e.v));
        return { topic: e.k, subscribers: list, version: e.version };
      });
      var t = table(["topic", "subscribers", "version"], rows, function (row, c) {
        return c === "subscribers" ? row.subscribers : document.createTextNode(text(row[c]));
      });
      show([el("h2", {}, ["Topics"]), rows.length ? t : el("p", {}, ["No topics."])]);
    }).catch(function (e) { show([el("h2", {}, ["Topics"]), failure(e)]); });
  }

  function route() {
    var h = location.hash;
    if (h.indexOf("#/trans/") === 0) {
      var gid;
      try { gid = decodeURIComponent(h.slice("#/trans/".length)); } catch (e) { gid = ""; }
      return gid ? detailPage(gid) : listPage();
    }
    if (h === "#/topics") return topicsPage();
    return listPage();
  }
  function loadVersion() {
    call("GET", API.version).then(function (r) {
      document.getElementById("version").textContent = "version " + text(r.version);
    }).catch(function () {});
  }
  window.addEventListener("hashchange", route);
  loadVersion();
  route();
})();
`;
