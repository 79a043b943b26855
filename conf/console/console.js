/*
 * PromptEnchanter console: plain JavaScript, no build step, no third-party code.
 * Safe by construction: every value from the API goes into the page as text (textContent,
 * input.value, SVG text nodes), never as markup. The session token lives in sessionStorage
 * and is sent as "Authorization: Bearer": no cookie is ever sent, so no request can be forged
 * from another site (CSRF), and the Content-Security-Policy of these files allows no inline
 * script.
 */
'use strict';

(function () {
  var KEY = 'pe-console-session';
  var S = null; // {token, kind: 'admin'|'support', role, username, perms: {flag: bool}}
  var base = (document.querySelector('meta[name="pe-api-base"]').getAttribute('content') || '').replace(/\/+$/, '');

  /* Which user fields each role writes (docs/operators.md, "Roles and rights"): the API
   * refuses anything else whatever the page shows; this only decides which controls appear. */
  var ALL_FIELDS = ['name', 'email', 'user_type', 'subscription_plan', 'credits', 'limits', 'level',
                    'access_rtype', 'is_active', 'is_verified', 'about_me', 'hobbies', 'additional_notes'];
  var WRITES = {
    'new': [],
    'support': ['email', 'subscription_plan', 'credits', 'limits'],
    'advanced': ALL_FIELDS,
    'admin': ALL_FIELDS,
    'super-admin': ALL_FIELDS
  };
  var RTYPES = ['bpe', 'bcot', 'hcot', 'react', 'tot', 'custom'];
  var LEVELS = ['low', 'medium', 'high', 'ultra'];

  function $(id) { return document.getElementById(id); }

  /* An element; attrs set as properties/attributes (never innerHTML), children as nodes or text. */
  function el(tag, attrs) {
    var e = document.createElement(tag);
    var k;
    attrs = attrs || {};
    for (k in attrs) {
      if (!Object.prototype.hasOwnProperty.call(attrs, k)) continue;
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'class') e.className = attrs[k];
      else if (k.indexOf('on') === 0) e.addEventListener(k.slice(2), attrs[k]);
      else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'type') e[k] = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function text(v) {
    if (v === null || v === undefined) return '';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }
  function say(msg, bad) { var s = $('status'); s.textContent = msg || ''; s.className = bad ? 'error' : ''; }
  function can(flag) { return !!(S && S.perms && S.perms[flag]); }
  function prefix() { return S.kind === 'admin' ? '/v1/admin-panel' : '/v1/support'; }

  function ApiError(status, message, body) { this.status = status; this.message = message; this.body = body; }

  /* One API call with the session; resolves to the parsed JSON, rejects with ApiError. */
  function api(method, path, body, query) {
    var url = base + path;
    if (query) {
      var q = Object.keys(query).filter(function (k) { return query[k] !== '' && query[k] !== null && query[k] !== undefined; })
        .map(function (k) { return encodeURIComponent(k) + '=' + encodeURIComponent(query[k]); }).join('&');
      if (q) url += '?' + q;
    }
    var opts = { method: method, headers: {}, credentials: 'omit', cache: 'no-store' };
    if (S && S.token) opts.headers.Authorization = 'Bearer ' + S.token;
    if (body !== undefined && body !== null) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      var ct = r.headers.get('Content-Type') || '';
      var p = ct.indexOf('json') >= 0 ? r.json() : r.text();
      return p.then(function (data) {
        if (r.ok) return data;
        var msg = (data && data.message) ? data.message : ('HTTP ' + r.status);
        if (r.status === 401 && S && S.token && path.indexOf('/login') < 0) { logout(true); msg = 'Session ended: log in again'; }
        throw new ApiError(r.status, msg, data);
      });
    });
  }
  function fail(e) { say(e && e.message ? e.message : String(e), true); }

  /* ------------------------------------------------------------------ session */
  function save() { if (S) sessionStorage.setItem(KEY, JSON.stringify(S)); else sessionStorage.removeItem(KEY); }
  function restore() {
    try { S = JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch (e) { S = null; }
    if (S && !S.token) S = null;
  }

  function login(ev) {
    ev.preventDefault();
    var kind = $('login-kind').value;
    var username = $('login-username').value;
    var password = $('login-password').value;
    $('login-error').textContent = '';
    S = null;
    var path = kind === 'admin' ? '/v1/admin-panel/login' : '/v1/support/login';
    api('POST', path, { username: username, password: password }).then(function (j) {
      S = { token: j.session.session_token, kind: kind, username: username, perms: {} };
      if (kind === 'admin') {
        S.role = j.admin.is_super_admin ? 'super-admin' : 'admin';
        (j.admin.permissions || []).forEach(function (p) { S.perms[p] = true; });
        return null;
      }
      S.role = j.staff.staff_level;
      return api('GET', '/v1/support/permissions').then(function (p) { S.perms = p.permissions || {}; });
    }).then(function () {
      $('login-password').value = '';
      save();
      enter();
    }).catch(function (e) {
      S = null;
      $('login-error').textContent = e.message || 'Login failed';
    });
  }

  function logout(expired) {
    var had = S;
    if (had && !expired) api('POST', prefix() + '/logout').catch(function () {});
    S = null;
    save();
    $('app').hidden = true;
    $('whoami').hidden = true;
    $('login-view').hidden = false;
    if (expired) $('login-error').textContent = 'Session ended: log in again';
  }

  function enter() {
    $('login-view').hidden = true;
    $('app').hidden = false;
    $('whoami').hidden = false;
    $('who').textContent = S.username + ' (' + S.role + ')';
    Array.prototype.forEach.call($('nav').querySelectorAll('button'), function (b) {
      var need = b.getAttribute('data-need');
      b.hidden = need ? (need === 'admin' ? S.kind !== 'admin' : !can(need)) : false;
    });
    show('users');
  }

  /* ------------------------------------------------------------------ pages */
  var PAGES = { users: loadUsers, events: loadEvents, access: loadAccess, prompts: loadPrompts,
                cache: loadCache, usage: loadUsage, health: loadHealth };
  function show(name, arg) {
    say('');
    Array.prototype.forEach.call(document.querySelectorAll('.page'), function (p) { p.hidden = p.id !== 'page-' + name; });
    Array.prototype.forEach.call($('nav').querySelectorAll('button'), function (b) {
      b.className = b.getAttribute('data-page') === name ? 'current' : '';
    });
    if (name === 'user') loadUser(arg);
    else PAGES[name]();
  }

  function cell(v) { return el('td', { text: text(v) }); }
  function pager(prefixId, st, total, reload) {
    var pages = Math.max(1, Math.ceil(total / st.size));
    $(prefixId + '-pageinfo').textContent = 'page ' + st.page + ' of ' + pages + ' (' + total + ')';
    $(prefixId + '-prev').disabled = st.page <= 1;
    $(prefixId + '-next').disabled = st.page >= pages;
    $(prefixId + '-prev').onclick = function () { st.page--; reload(); };
    $(prefixId + '-next').onclick = function () { st.page++; reload(); };
  }

  /* users */
  var usersSt = { page: 1, size: 20, seq: 0 };
  function loadUsers() {
    var seq = ++usersSt.seq; // only the answer to the latest search is shown
    $('users-table').setAttribute('aria-busy', 'true');
    api('GET', prefix() + '/users', null, {
      search: $('users-search').value, plan: $('users-plan').value, is_active: $('users-active').value,
      is_verified: $('users-verified').value, sort: $('users-sort').value, order: $('users-order').value,
      page: usersSt.page, page_size: usersSt.size
    }).then(function (j) {
      if (seq !== usersSt.seq) return;
      var tb = clear($('users-table').tBodies[0]);
      (j.users || []).forEach(function (u) {
        var link = el('a', { href: '#', class: 'user-link', text: u.username,
                             onclick: function (ev) { ev.preventDefault(); show('user', u.id); } });
        tb.appendChild(el('tr', { 'data-user-id': u.id }, el('td', {}, link), cell(u.name), cell(u.email),
                          cell(u.subscription_plan), cell(u.is_active), cell(u.is_verified)));
      });
      if (!(j.users || []).length) tb.appendChild(el('tr', {}, el('td', { colspan: '6', text: 'No users found' })));
      pager('users', usersSt, j.total_count || 0, loadUsers);
      $('users-table').setAttribute('aria-busy', 'false');
    }).catch(fail);
  }

  /* one user */
  function fieldControl(name, value, writable) {
    if (name === 'credits' || name === 'limits') {
      var keys = name === 'credits' ? ['main', 'reset'] : ['conversation_limit', 'reset'];
      return el.apply(null, ['span', { class: 'pair' }].concat(keys.map(function (k) {
        var v = value ? value[k] : '';
        return el('label', {}, k + ' ', writable
          ? el('input', { type: 'number', id: 'f-' + name + '-' + k, value: text(v) })
          : el('span', { id: 'f-' + name + '-' + k, text: text(v) }));
      })));
    }
    if (name === 'access_rtype') {
      var have = value || [];
      return el.apply(null, ['span', { class: 'rtypes' }].concat(RTYPES.map(function (t) {
        return el('label', {}, el('input', { type: 'checkbox', value: t, checked: have.indexOf(t) >= 0,
                                             disabled: !writable, class: 'f-rtype' }), ' ' + t);
      })));
    }
    if (!writable) return el('span', { id: 'f-' + name, text: text(value) });
    if (name === 'is_active' || name === 'is_verified') return el('input', { type: 'checkbox', id: 'f-' + name, checked: !!value });
    if (name === 'level' || name === 'user_type') {
      var opts = name === 'level' ? LEVELS : ['Personal', 'Business'];
      var s = el('select', { id: 'f-' + name });
      opts.forEach(function (o) { s.appendChild(el('option', { value: o, text: o })); });
      s.value = value;
      return s;
    }
    if (name === 'about_me' || name === 'hobbies' || name === 'additional_notes') {
      return el('textarea', { id: 'f-' + name, value: text(value) });
    }
    return el('input', { id: 'f-' + name, value: text(value) });
  }

  function readField(name) {
    if (name === 'credits' || name === 'limits') {
      var keys = name === 'credits' ? ['main', 'reset'] : ['conversation_limit', 'reset'];
      var o = {};
      keys.forEach(function (k) { o[k] = parseInt($('f-' + name + '-' + k).value, 10); });
      return o;
    }
    if (name === 'access_rtype') {
      return Array.prototype.filter.call(document.querySelectorAll('.f-rtype'), function (c) { return c.checked; })
        .map(function (c) { return c.value; });
    }
    if (name === 'is_active' || name === 'is_verified') return $('f-' + name).checked;
    return $('f-' + name).value;
  }

  function loadUser(id) {
    var form = clear($('user-form'));
    clear($('user-actions'));
    clear($('user-logs'));
    $('user-title').textContent = '';
    api('GET', prefix() + '/users/' + encodeURIComponent(id)).then(function (j) {
      var u = j.user || j;
      $('user-title').textContent = 'User ' + u.username;
      var writes = can('can_update_users') ? (WRITES[S.role] || []) : [];
      var dl = el('dl', { class: 'fields' });
      ['id', 'username', 'time_created', 'last_login', 'last_activity'].forEach(function (k) {
        if (k in u) dl.appendChild(el('div', {}, el('dt', { text: k }), el('dd', { id: 'f-' + k, text: text(u[k]) })));
      });
      var editable = [];
      ALL_FIELDS.forEach(function (k) {
        if (!(k in u)) return;
        var w = writes.indexOf(k) >= 0;
        if (w) editable.push(k);
        dl.appendChild(el('div', {}, el('dt', { text: k }), el('dd', {}, fieldControl(k, u[k], w))));
      });
      form.appendChild(dl);
      if (editable.length) {
        form.appendChild(el('button', { type: 'submit', id: 'user-save', text: 'Save changes' }));
        form.onsubmit = function (ev) {
          ev.preventDefault();
          var body = {};
          editable.forEach(function (k) {
            var v = readField(k);
            if (JSON.stringify(v) !== JSON.stringify(u[k])) body[k] = v;
          });
          if (!Object.keys(body).length) { say('Nothing changed'); return; }
          api('PUT', prefix() + '/users/' + encodeURIComponent(id), body).then(function (r) {
            say('Saved: ' + ((r.data && r.data.updated_fields) || Object.keys(body)).join(', '));
            loadUser(id);
          }).catch(fail);
        };
      } else {
        form.onsubmit = function (ev) { ev.preventDefault(); };
        form.appendChild(el('p', { class: 'note', id: 'user-readonly', text: 'Read only for your role.' }));
      }
      if (can('can_manage_api_keys')) {
        var out = el('span', { id: 'user-newkey', class: 'secret' });
        var armed = false;
        var b = el('button', { type: 'button', id: 'user-rekey', text: 'Regenerate API key' });
        b.addEventListener('click', function () {
          if (!armed) { armed = true; b.textContent = 'Click again to regenerate (the old key stops working)'; return; }
          armed = false;
          b.textContent = 'Regenerate API key';
          api('POST', prefix() + '/users/' + encodeURIComponent(id) + '/regenerate-api-key').then(function (r) {
            out.textContent = 'New key: ' + r.data.api_key;
          }).catch(fail);
        });
        $('user-actions').appendChild(el('p', {}, b, ' ', out));
      }
      if (S.kind === 'admin' && can('can_view_messages')) loadLogs(id);
    }).catch(fail);
  }

  function loadLogs(id) {
    api('GET', '/v1/admin-panel/message-logs/' + encodeURIComponent(id), null, { page_size: 100 }).then(function (j) {
      var box = clear($('user-logs'));
      box.appendChild(el('h3', { text: 'Message logs (' + (j.total_count || 0) + ')' }));
      var logs = j.logs || [];
      if (logs.length) {
        var days = {};
        logs.forEach(function (l) { var d = text(l.timestamp).slice(0, 10); days[d] = (days[d] || 0) + (l.tokens_used || 0); });
        var keys = Object.keys(days).sort();
        box.appendChild(barChart('Tokens per day (last ' + logs.length + ' logs)', keys, keys.map(function (k) { return days[k]; }), 'chart-user-tokens'));
      }
      var t = el('table', { class: 'list', id: 'logs-table' },
        el('thead', {}, el('tr', {}, el('th', { text: 'Time' }), el('th', { text: 'Model' }), el('th', { text: 'r_type' }),
                                     el('th', { text: 'Status' }), el('th', { text: 'Tokens' }), el('th', { text: 'ms' }),
                                     el('th', { text: 'Request' }))));
      var tb = el('tbody');
      logs.forEach(function (l) {
        tb.appendChild(el('tr', {}, cell(l.timestamp), cell(l.model), cell(l.r_type), cell(l.status), cell(l.tokens_used),
                          cell(l.processing_time_ms), cell(l.messages)));
      });
      t.appendChild(tb);
      box.appendChild(t);
    }).catch(fail);
  }

  /* security events */
  var eventsSt = { page: 1, size: 25 };
  function loadEvents() {
    api('GET', '/v1/admin-panel/security-logs', null, {
      event_type: $('events-type').value, severity: $('events-severity').value, user_id: $('events-user').value,
      page: eventsSt.page, page_size: eventsSt.size
    }).then(function (j) {
      var tb = clear($('events-table').tBodies[0]);
      (j.logs || []).forEach(function (e) {
        tb.appendChild(el('tr', { class: 'sev-' + text(e.severity).replace(/[^a-z]/g, '') }, cell(e.timestamp), cell(e.event_type),
                          cell(e.severity), cell(text(e.username) + (e.principal_kind ? ' (' + e.principal_kind + ')' : '')),
                          cell(e.ip_address), el('td', { class: 'details', text: text(e.details) })));
      });
      pager('events', eventsSt, j.total_count || 0, loadEvents);
    }).catch(fail);
  }

  /* IP whitelist, stored blocks, automatic blocks */
  var EXPIRY = [['', 'never'], ['3600', '1 hour'], ['86400', '1 day'], ['604800', '7 days'], ['2592000', '30 days']];
  function accessList(kind, title, noteField) {
    var box = el('div', { class: 'access', id: 'access-' + kind });
    box.appendChild(el('h3', { text: title }));
    var tb = el('tbody');
    box.appendChild(el('table', { class: 'list' },
      el('thead', {}, el('tr', {}, el('th', { text: 'Network' }), el('th', { text: noteField }), el('th', { text: 'By' }),
                                   el('th', { text: 'Created' }), el('th', { text: 'Expires' }), el('th'))), tb));
    var net = el('input', { placeholder: 'address or CIDR', class: 'net', required: 'required' });
    var note = el('input', { placeholder: noteField, class: 'note-in' });
    var exp = el('select', { class: 'expiry' });
    EXPIRY.forEach(function (e) { exp.appendChild(el('option', { value: e[0], text: e[1] })); });
    var form = el('form', { class: 'filters' }, net, note, el('label', {}, 'expires ', exp),
                  el('button', { type: 'submit', text: 'Add' }));
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var body = { network: net.value };
      if (note.value) body[noteField] = note.value;
      if (exp.value) body.expires_in = parseInt(exp.value, 10);
      api('POST', '/v1/admin-panel/' + kind, body).then(function () { say('Added ' + body.network); loadAccess(); }).catch(fail);
    });
    box.appendChild(form);
    api('GET', '/v1/admin-panel/' + kind).then(function (j) {
      (j.entries || []).forEach(function (e) {
        var rm = el('button', { type: 'button', text: 'Remove', onclick: function () {
          api('DELETE', '/v1/admin-panel/' + kind + '/' + encodeURIComponent(e.id)).then(function () {
            say('Removed ' + e.network); loadAccess();
          }).catch(fail);
        } });
        tb.appendChild(el('tr', {}, cell(e.network), cell(e[noteField]), cell(e.created_by), cell(e.created_at),
                          cell(e.expires_at || 'never'), el('td', {}, rm)));
      });
    }).catch(fail);
    return box;
  }

  function loadAccess() {
    var box = clear($('access-lists'));
    box.appendChild(accessList('ip-whitelist', 'Whitelist', 'description'));
    box.appendChild(accessList('ip-blocks', 'Blocks', 'reason'));
    api('GET', '/v1/admin-panel/auto-blocks').then(function (j) {
      var tb = clear($('autoblocks-table').tBodies[0]);
      (j.blocks || []).forEach(function (b) {
        tb.appendChild(el('tr', {}, cell(b.ip_address), cell(b.blocked_until), el('td', {}, el('button', {
          type: 'button', text: 'Lift', onclick: function () {
            api('DELETE', '/v1/admin-panel/auto-blocks/' + encodeURIComponent(b.ip_address)).then(function () {
              say('Lifted ' + b.ip_address); loadAccess();
            }).catch(fail);
          } }))));
      });
      if (!(j.blocks || []).length) tb.appendChild(el('tr', {}, el('td', { colspan: '3', text: 'none' })));
    }).catch(fail);
  }

  /* system prompts */
  function loadPrompts() {
    api('GET', '/v1/admin/system-prompts').then(function (j) {
      var d = j.data || {};
      var box = clear($('prompts-list'));
      (d.r_types || []).forEach(function (t) {
        var over = (d.overridden || []).indexOf(t) >= 0;
        var ta = el('textarea', { id: 'prompt-' + t, rows: '6', value: text(d.prompts[t]) });
        var save = el('button', { type: 'button', text: 'Save', onclick: function () {
          api('PUT', '/v1/admin/system-prompts', { r_type: t, prompt: ta.value }).then(function () {
            say('Saved the prompt of ' + t); loadPrompts();
          }).catch(fail);
        } });
        var reset = el('button', { type: 'button', text: 'Reset to built-in', disabled: !over, onclick: function () {
          api('DELETE', '/v1/admin/system-prompts/' + encodeURIComponent(t)).then(function () {
            say('Reset ' + t); loadPrompts();
          }).catch(fail);
        } });
        box.appendChild(el('div', { class: 'prompt' }, el('h3', { text: t + (over ? ' (overridden)' : ' (built-in)') }), ta,
                           el('p', {}, save, ' ', reset)));
      });
    }).catch(fail);
  }

  /* cache clear: a confirm step, then DELETE /v1/admin/cache and what it reached */
  function loadCache() {
    $('cache-confirm').hidden = true;
    $('cache-clear').disabled = false;
    var res = $('cache-result');
    res.textContent = '';
    res.className = '';
  }
  function cacheAsk(yes) {
    $('cache-confirm').hidden = !yes;
    $('cache-clear').disabled = yes;
  }
  function cacheClear() {
    var res = $('cache-result');
    cacheAsk(false);
    res.textContent = 'Clearing…';
    res.className = '';
    api('DELETE', '/v1/admin/cache').then(function (j) {
      var d = j.data || {};
      var what = [];
      if (d.response_cache) what.push('response cache');
      if (d.research_cache) what.push('research cache');
      res.className = 'ok';
      res.textContent = text(j.message) + ' (' + (what.length ? what.join(', ') : 'no cache is on') + '; ' +
        (d.scope === 'cluster' ? 'every node sharing memcached' : 'this node only: clear each node') + ')';
    }).catch(function (e) {
      res.className = 'error';
      res.textContent = e.message || 'Failed to clear cache';
    });
  }

  /* charts: plain SVG, labels as text nodes */
  var SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, txt) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (txt !== undefined) e.textContent = txt;
    return e;
  }
  /* 2026-12-05 -> 12-05; total_users -> total users */
  function shortLabel(l) {
    l = String(l);
    if (/^\d{4}-\d{2}-\d{2}$/.test(l)) return l.slice(5);
    l = l.replace(/_users$/, '').replace(/_/g, ' ');
    return l.length > 14 ? l.slice(0, 13) + '…' : l;
  }
  function barChart(title, labels, values, id) {
    var W = 440, H = 200, L = 50, B = 36, T = 22;
    var max = Math.max.apply(null, values.concat([1]));
    var s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img', width: W, height: H });
    s.appendChild(svg('title', {}, title));
    s.appendChild(svg('line', { x1: L, y1: H - B, x2: W - 5, y2: H - B, class: 'axis' }));
    s.appendChild(svg('text', { x: L - 6, y: T + 10, 'text-anchor': 'end', class: 'tick' }, String(max)));
    s.appendChild(svg('text', { x: L - 6, y: H - B, 'text-anchor': 'end', class: 'tick' }, '0'));
    var n = Math.max(values.length, 1);
    var step = (W - L - 10) / n;
    var bw = Math.min(60, Math.max(2, step * 0.7));
    values.forEach(function (v, i) {
      var h = (H - B - T) * (v / max);
      var x = L + 5 + i * step + (step - bw) / 2;
      var r = svg('rect', { x: x.toFixed(1), y: (H - B - h).toFixed(1), width: bw.toFixed(1), height: h.toFixed(1),
                            class: 'bar', 'data-label': labels[i], 'data-value': v });
      r.appendChild(svg('title', {}, labels[i] + ': ' + v));
      s.appendChild(r);
      if (n <= 12) {
        s.appendChild(svg('text', { x: (x + bw / 2).toFixed(1), y: (H - B - h - 4).toFixed(1), 'text-anchor': 'middle',
                                    class: 'value' }, String(v)));
      }
      if (n <= 12 || i % Math.ceil(n / 8) === 0) {
        s.appendChild(svg('text', { x: (x + bw / 2).toFixed(1), y: H - B + 14, 'text-anchor': 'middle', class: 'tick' },
                          shortLabel(labels[i])));
      }
    });
    var fig = el('figure', { class: 'chart-box', id: id });
    fig.appendChild(s);
    fig.appendChild(el('figcaption', { text: title }));
    return fig;
  }

  function loadUsage() {
    var box = clear($('usage-body'));
    api('GET', '/v1/admin-panel/statistics').then(function (j) {
      var us = j.user_statistics || {}, as = j.api_statistics || {}, ss = j.system_statistics || {};
      box.appendChild(el('p', { id: 'usage-totals', text: 'Messages logged: ' + text(as.total_messages) + ' · security events: ' +
                                text(ss.security_events) + ' · at ' + text(ss.timestamp) }));
      var periods = [['today', 'today'], ['7d', '7 days'], ['30d', '30 days']];
      box.appendChild(barChart('Requests (completions)', periods.map(function (p) { return p[1]; }),
                               periods.map(function (p) { return as['requests_' + p[0]] || 0; }), 'chart-requests'));
      box.appendChild(barChart('Tokens', periods.map(function (p) { return p[1]; }),
                               periods.map(function (p) { return as['tokens_' + p[0]] || 0; }), 'chart-tokens'));
      var keys = ['total_users', 'active_users', 'inactive_users', 'verified_users'];
      box.appendChild(barChart('Users', keys, keys.map(function (k) { return us[k] || 0; }), 'chart-users'));
      var top = as.top_users_30d || [];
      box.appendChild(el('h3', { text: 'Top users (30 days)' }));
      var tb = el('tbody');
      top.forEach(function (t) {
        tb.appendChild(el('tr', { 'data-user-id': t.user_id }, cell(t.username), cell(t.requests), cell(t.tokens)));
      });
      box.appendChild(el('table', { class: 'list', id: 'top-users' },
        el('thead', {}, el('tr', {}, el('th', { text: 'User' }), el('th', { text: 'Requests' }), el('th', { text: 'Tokens' }))), tb));
      var daily = el('div', { id: 'usage-daily' });
      box.appendChild(daily);
      api('GET', '/v1/monitoring/usage', null, { days: 30 }).then(function (u) {
        var d = u.daily_usage || [];
        var labels = d.map(function (x) { return x.date; });
        daily.appendChild(barChart('Requests per day', labels, d.map(function (x) { return x.messages; }), 'chart-daily-requests'));
        daily.appendChild(barChart('Tokens per day', labels, d.map(function (x) { return x.tokens; }), 'chart-daily-tokens'));
      }).catch(function (e) {
        daily.appendChild(el('p', { class: 'note', id: 'usage-daily-missing',
                                    text: 'Requests and tokens per day need the monitoring routes (/v1/monitoring/usage) here: ' + e.message }));
      });
      var hits = el('p', { id: 'usage-cache' });
      box.appendChild(hits);
      fetch(base + '/metrics', { credentials: 'omit', cache: 'no-store' }).then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.text();
      }).then(function (t) {
        var n = { hit: 0, all: 0 };
        t.split('\n').forEach(function (line) {
          var m = /^promptenchanter_cache_requests_total\{([^}]*)\}\s+([0-9.eE+]+)/.exec(line);
          if (!m || m[1].indexOf('cache="response"') < 0) return;
          var v = parseFloat(m[2]);
          n.all += v;
          if (m[1].indexOf('result="hit"') >= 0) n.hit += v;
        });
        hits.textContent = 'Response cache hit rate: ' + (n.all ? (100 * n.hit / n.all).toFixed(1) + ' % of ' + n.all + ' look-ups' : 'no look-ups yet');
      }).catch(function (e) {
        hits.className = 'note';
        hits.textContent = 'The cache hit rate needs the metrics route (/metrics) here: ' + e.message;
      });
    }).catch(fail);
  }

  /* health: GET /health (liveness, every build), and the component status where mounted */
  function loadHealth() {
    var box = clear($('health-body'));
    fetch(base + '/health', { credentials: 'omit', cache: 'no-store' }).then(function (r) {
      return r.json().then(function (j) {
        box.appendChild(el('p', { id: 'health-live', class: r.ok ? 'ok' : 'error',
                                  text: 'Liveness (/health): ' + text(j.status) + ' — ' + text(j.service) + ' ' + text(j.version) }));
      });
    }).catch(fail).then(function () {
      return api('GET', '/v1/monitoring/health').then(function (j) {
        box.appendChild(el('p', { text: 'Readiness: ' + text(j.status) }));
        var tb = el('tbody');
        Object.keys(j.components || {}).forEach(function (k) {
          tb.appendChild(el('tr', {}, cell(k), cell(j.components[k].status)));
        });
        box.appendChild(el('table', { class: 'list', id: 'health-components' },
          el('thead', {}, el('tr', {}, el('th', { text: 'Component' }), el('th', { text: 'Status' }))), tb));
      }).catch(function (e) {
        box.appendChild(el('p', { class: 'note', text: 'Component status needs the monitoring routes (/v1/monitoring/health) on this location: ' + e.message }));
      });
    });
  }

  /* ------------------------------------------------------------------ wiring */
  document.addEventListener('DOMContentLoaded', function () {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', function () { logout(false); });
    $('users-filter').addEventListener('submit', function (ev) { ev.preventDefault(); usersSt.page = 1; loadUsers(); });
    $('events-filter').addEventListener('submit', function (ev) { ev.preventDefault(); eventsSt.page = 1; loadEvents(); });
    $('user-back').addEventListener('click', function () { show('users'); });
    $('cache-clear').addEventListener('click', function () { cacheAsk(true); });
    $('cache-confirm-no').addEventListener('click', function () { cacheAsk(false); });
    $('cache-confirm-yes').addEventListener('click', cacheClear);
    Array.prototype.forEach.call($('nav').querySelectorAll('button'), function (b) {
      b.addEventListener('click', function () { show(b.getAttribute('data-page')); });
    });
    restore();
    if (S) enter();
  });
}());
