// The daemon's web page. It talks to the Transmission RPC like any other client.
//
// Torrent names and file names come from strangers: they only ever reach the page through
// textContent, title and similar properties, never through HTML parsing (no innerHTML).
// The rows are built once and then updated in place, so a poll a second stays cheap with
// hundreds of torrents.
'use strict';

(function () {
  const RPC_URL = '/transmission/rpc';
  const SESSION_HEADER = 'X-Transmission-Session-Id';
  const POLL_MS = 1000;
  const HIDDEN_POLL_MS = 5000;
  const MAX_TORRENT_FILE = 32 * 1024 * 1024;
  // Everything the list shows. The files of a torrent are asked for separately, and only
  // for the torrents whose file list is open.
  const FIELDS = ['id', 'hashString', 'name', 'status', 'percentDone', 'totalSize',
    'leftUntilDone', 'rateDownload', 'rateUpload', 'eta', 'peersConnected', 'error',
    'errorString', 'isFinished', 'downloadedEver', 'uploadedEver', 'metadataPercentComplete',
    'queuePosition'];
  const FILE_FIELDS = ['id', 'hashString', 'name', 'files', 'fileStats'];
  const DASH = '\u2013';

  // ---- RPC -------------------------------------------------------------------------

  let sessionId = '';
  let tag = 0;

  class RpcError extends Error {}

  // One call: the 409 dance (Transmission's CSRF guard) as often as the daemon asks,
  // a bounded number of times in a row.
  async function rpc(method, args) {
    const body = JSON.stringify({ method: method, arguments: args || {}, tag: ++tag });
    for (let attempt = 0; attempt < 4; attempt++) {
      const headers = { 'Content-Type': 'application/json' };
      if (sessionId) headers[SESSION_HEADER] = sessionId;
      let resp;
      try {
        resp = await fetch(RPC_URL, {
          method: 'POST', headers: headers, body: body,
          credentials: 'same-origin', cache: 'no-store',
        });
      } catch (e) {
        throw new RpcError('cannot reach the daemon');
      }
      if (resp.status === 409) {
        const id = resp.headers.get(SESSION_HEADER);
        if (!id) throw new RpcError('HTTP 409 without a session id');
        sessionId = id;
        continue;
      }
      if (resp.status === 401 || resp.status === 403) {
        throw new RpcError('not allowed (HTTP ' + resp.status + '): reload the page to log in');
      }
      if (!resp.ok) throw new RpcError('HTTP ' + resp.status + ' ' + resp.statusText);
      let data;
      try {
        data = await resp.json();
      } catch (e) {
        throw new RpcError('the daemon sent something that is not JSON');
      }
      if (!data || data.result !== 'success') {
        throw new RpcError(data && data.result ? String(data.result) : 'no result');
      }
      return data.arguments || {};
    }
    throw new RpcError('the session id keeps changing');
  }

  // ---- small helpers ---------------------------------------------------------------

  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function button(text, cls, title) {
    const b = el('button', cls, text);
    b.type = 'button';
    if (title) b.title = title;
    return b;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function setTitle(node, text) {
    if (node.title !== text) node.title = text;
  }

  function setHidden(node, hidden) {
    if (node.hidden !== hidden) node.hidden = hidden;
  }

  // Bidirectional overrides and isolates (which can make "evil\u202eexe.txt" read as
  // "eviltxt.exe") and control characters, shown as U+FFFD instead.
  const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

  function clean(s) {
    return String(s).replace(UNSAFE, '\ufffd');
  }

  function num(v) {
    return typeof v === 'number' && isFinite(v) ? v : 0;
  }

  const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

  function size(n) {
    n = num(n);
    if (n <= 0) return '0 B';
    let i = 0;
    while (n >= 1000 && i < UNITS.length - 1) {
      n /= 1000;
      i++;
    }
    const s = i === 0 ? String(n) : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0);
    return s + ' ' + UNITS[i];
  }

  function rate(n) {
    return num(n) > 0 ? size(n) + '/s' : DASH;
  }

  function duration(s) {
    s = Math.floor(s);
    if (s < 60) return s + 's';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + (s % 60) + 's';
    const h = Math.floor(m / 60);
    if (h < 24) return h + 'h ' + (m % 60) + 'm';
    const d = Math.floor(h / 24);
    if (d < 100) return d + 'd ' + (h % 24) + 'h';
    return '> 99d';
  }

  // Rounded down, so that "100%" means done.
  function percent(p) {
    p = num(p);
    if (p >= 1) return '100%';
    if (p <= 0) return '0%';
    return Math.min(99, Math.floor(p * 100)) + '%';
  }

  // The state text and a class for its colour.
  // Its place in the queue, counted from 1 as people count.
  function queued(t, what) {
    const n = typeof t.queuePosition === 'number' ? ' #' + (t.queuePosition + 1) : '';
    return ['Queued to ' + what + n, 'queued'];
  }

  function stateOf(t) {
    if (t.error) return ['Error: ' + clean(t.errorString || 'unknown error'), 'error'];
    if (t.status === 0) return ['Paused', 'paused'];
    if (t.status === 3) return queued(t, 'download');
    if (t.status === 5) return queued(t, 'seed');
    if (num(t.metadataPercentComplete) < 1) return ['Fetching metadata', 'metadata'];
    switch (t.status) {
      case 1:
      case 2: return ['Checking', 'checking'];
      case 4: return ['Downloading', 'downloading'];
      case 6: return ['Seeding', 'seeding'];
      default: return ['Unknown', 'unknown'];
    }
  }

  function etaText(t) {
    if (t.status !== 4 || num(t.metadataPercentComplete) < 1) return DASH;
    if (t.eta === -2) return '\u221e';
    if (typeof t.eta !== 'number' || t.eta < 0) return DASH;
    return duration(t.eta);
  }

  function keyOf(t) {
    return typeof t.hashString === 'string' && t.hashString ? t.hashString : 'id:' + t.id;
  }

  // ---- the status line -------------------------------------------------------------

  const msgEl = document.getElementById('message');
  let msgTimer = 0;
  let msgKind = '';

  // kind: 'info' (fades after a while), 'error' (stays), 'poll' (stays until the daemon
  // answers again).
  function message(text, kind) {
    clearTimeout(msgTimer);
    msgKind = text ? kind || 'info' : '';
    setText(msgEl, text ? clean(text) : '');
    const cls = 'message' + (text ? (msgKind === 'info' ? ' info' : ' error') : '');
    if (msgEl.className !== cls) msgEl.className = cls;
    if (text && msgKind === 'info') msgTimer = setTimeout(function () { message(''); }, 8000);
  }

  // ---- the torrent list ------------------------------------------------------------

  const table = document.getElementById('torrents');
  const thead = table.tHead;
  const emptyEl = document.getElementById('empty');
  const totalsEl = document.getElementById('totals');
  const views = new Map(); // key -> view
  const byGroup = new WeakMap(); // tbody.item -> view
  let flashKey = '';

  function makeView(t) {
    const v = {
      key: keyOf(t), id: t.id, hash: t.hashString || '', name: '',
      expanded: false, files: [], fileCount: -1, hold: new Map(),
    };
    v.group = el('tbody', 'item');

    const tr = v.tr = el('tr', 'torrent');
    tr.dataset.hash = v.hash;
    tr.dataset.id = String(t.id);

    const nameTd = el('td', 'col-name');
    const wrap = el('div', 'name-wrap');
    v.toggle = button('\u25b8', 'files-toggle', 'Show files');
    v.toggle.setAttribute('aria-expanded', 'false');
    const text = el('div', 'name-text');
    v.nameEl = el('div', 'name');
    v.subEl = el('div', 'sub');
    v.errorEl = el('div', 'error-text');
    v.errorEl.hidden = true;
    text.append(v.nameEl, v.subEl, v.errorEl);
    wrap.append(v.toggle, text);
    nameTd.append(wrap);

    const progTd = el('td', 'col-progress');
    v.bar = el('progress', 'bar');
    v.bar.max = 1;
    v.bar.value = 0;
    v.pctEl = el('span', 'percent', '0%');
    progTd.append(v.bar, v.pctEl);

    v.downEl = el('td', 'col-num down');
    v.upEl = el('td', 'col-num up');
    v.peersEl = el('td', 'col-num peers');
    v.etaEl = el('td', 'col-num eta');
    const stateTd = el('td', 'col-state');
    v.stateEl = el('span', 'state');
    stateTd.append(v.stateEl);

    const actTd = el('td', 'col-actions');
    v.pauseBtn = button('Pause', 'pause', 'Stop transferring');
    v.resumeBtn = button('Resume', 'resume', 'Start transferring');
    v.removeBtn = button('Remove', 'remove', 'Remove from the list, keep the data');
    v.removeDataBtn = button('Delete data', 'remove-data danger',
      'Remove from the list and delete the downloaded data');
    actTd.append(v.pauseBtn, v.resumeBtn, v.removeBtn, v.removeDataBtn);

    tr.append(nameTd, progTd, v.downEl, v.upEl, v.peersEl, v.etaEl, stateTd, actTd);

    // The expander: a second row, built when it is first opened.
    v.filesTr = el('tr', 'files');
    v.filesTr.dataset.filesFor = v.hash;
    v.filesTr.hidden = true;
    const td = el('td');
    td.colSpan = 8;
    v.panel = el('div', 'files-panel');
    const head = el('div', 'files-head');
    v.filesAll = button('Want all', 'files-all', 'Download every file');
    v.filesNone = button('Want none', 'files-none', 'Download no file');
    v.filesInfo = el('span', 'files-info', 'Loading files\u2026');
    head.append(v.filesAll, v.filesNone, v.filesInfo);
    v.fileTable = el('table', 'file-list');
    v.fileBody = el('tbody');
    v.fileTable.append(v.fileBody);
    v.panel.append(head, v.fileTable);
    td.append(v.panel);
    v.filesTr.append(td);

    v.group.append(tr, v.filesTr);
    byGroup.set(v.group, v);
    v.last = {};
    return v;
  }

  function update(v, t) {
    const last = v.last;
    v.id = t.id;
    if (last.name !== t.name) {
      v.name = clean(typeof t.name === 'string' && t.name ? t.name : v.hash);
      setText(v.nameEl, v.name);
      setTitle(v.nameEl, v.name);
      last.name = t.name;
    }
    const hasMeta = num(t.metadataPercentComplete) >= 1;
    const total = num(t.totalSize);
    const left = num(t.leftUntilDone);
    const parts = [];
    if (!hasMeta) {
      parts.push('metadata ' + Math.floor(num(t.metadataPercentComplete) * 100) + '%');
    } else {
      parts.push(size(total));
      if (left > 0) parts.push(size(left) + ' left');
    }
    if (num(t.uploadedEver) > 0) parts.push('uploaded ' + size(t.uploadedEver));
    setText(v.subEl, parts.join(' \u00b7 '));
    const err = t.error ? clean(t.errorString || 'unknown error') : '';
    setText(v.errorEl, err);
    setTitle(v.errorEl, err);
    setHidden(v.errorEl, !err);

    const p = Math.max(0, Math.min(1, num(t.percentDone)));
    if (v.bar.value !== p) v.bar.value = p;
    setText(v.pctEl, percent(p));

    setText(v.downEl, rate(t.rateDownload));
    setText(v.upEl, rate(t.rateUpload));
    setText(v.peersEl, String(num(t.peersConnected)));
    setText(v.etaEl, etaText(t));

    const st = stateOf(t);
    setText(v.stateEl, st[0]);
    setTitle(v.stateEl, st[1] === 'error' ? st[0] : '');
    const cls = 'torrent state-' + st[1] + (v.expanded ? ' open' : '');
    if (v.tr.className !== cls) v.tr.className = cls;
    const status = String(t.status);
    if (v.tr.dataset.status !== status) v.tr.dataset.status = status;

    const stopped = t.status === 0;
    setHidden(v.pauseBtn, stopped);
    setHidden(v.resumeBtn, !stopped);
  }

  function render(list) {
    list.sort(function (a, b) { return num(a.id) - num(b.id); });
    const seen = new Set();
    let prev = null;
    for (const t of list) {
      const key = keyOf(t);
      if (seen.has(key)) continue;
      seen.add(key);
      let v = views.get(key);
      if (!v) {
        v = makeView(t);
        views.set(key, v);
      }
      update(v, t);
      const anchor = prev ? prev.group.nextElementSibling : thead.nextElementSibling;
      if (anchor !== v.group) table.insertBefore(v.group, anchor);
      prev = v;
    }
    for (const [key, v] of views) {
      if (!seen.has(key)) {
        v.group.remove();
        views.delete(key);
      }
    }
    setHidden(emptyEl, views.size !== 0);

    let down = 0;
    let up = 0;
    for (const t of list) {
      down += num(t.rateDownload);
      up += num(t.rateUpload);
    }
    const n = views.size;
    setText(totalsEl, n + (n === 1 ? ' torrent' : ' torrents') +
      ' \u00b7 \u2193 ' + rate(down) + ' \u00b7 \u2191 ' + rate(up));

    if (flashKey && views.has(flashKey)) {
      const v = views.get(flashKey);
      flashKey = '';
      v.group.classList.add('flash');
      v.tr.scrollIntoView({ block: 'nearest' });
      setTimeout(function () { v.group.classList.remove('flash'); }, 2000);
    }
  }

  // ---- the files of a torrent ------------------------------------------------------

  function streamUrl(v, i) {
    return '/stream/' + encodeURIComponent(v.hash) + '/' + i;
  }

  function baseName(path) {
    const i = path.lastIndexOf('/');
    return i >= 0 ? path.slice(i + 1) : path;
  }

  function buildFiles(v, files) {
    v.fileBody.textContent = '';
    v.files = [];
    const prefix = v.name ? v.name + '/' : '';
    for (let i = 0; i < files.length; i++) {
      const f = files[i] || {};
      const path = clean(typeof f.name === 'string' ? f.name : 'file ' + i);
      const shown = files.length > 1 && prefix && path.startsWith(prefix)
        ? path.slice(prefix.length) : path;
      const row = el('tr', 'file');
      row.dataset.index = String(i);

      const nameTd = el('td', 'file-name');
      const label = el('label');
      const cb = el('input', 'wanted');
      cb.type = 'checkbox';
      cb.checked = true;
      const nameSpan = el('span', 'file-path', shown);
      nameSpan.title = path;
      label.append(cb, nameSpan);
      nameTd.append(label);

      const sizeTd = el('td', 'file-size', size(f.length));
      const pctTd = el('td', 'file-percent');
      const bar = el('progress', 'bar small');
      bar.max = 1;
      bar.value = 0;
      const pct = el('span', 'percent', '0%');
      pctTd.append(bar, pct);

      const linkTd = el('td', 'file-links');
      const stream = el('a', 'stream', 'Open');
      stream.href = streamUrl(v, i);
      stream.target = '_blank';
      stream.rel = 'noopener noreferrer';
      stream.title = 'Play or view while it downloads';
      const dl = el('a', 'download', 'Save');
      dl.href = streamUrl(v, i);
      dl.download = baseName(path);
      dl.title = 'Save the file';
      linkTd.append(stream, dl);

      row.append(nameTd, sizeTd, pctTd, linkTd);
      v.fileBody.append(row);
      v.files.push({ cb: cb, bar: bar, pct: pct, length: num(f.length) });
    }
    v.fileCount = files.length;
  }

  function updateFiles(v, t) {
    const files = Array.isArray(t.files) ? t.files : [];
    const stats = Array.isArray(t.fileStats) ? t.fileStats : [];
    if (typeof t.name === 'string' && t.name) v.name = clean(t.name);
    if (files.length !== v.fileCount) buildFiles(v, files);
    const now = Date.now();
    let wanted = 0;
    for (let i = 0; i < v.files.length; i++) {
      const f = v.files[i];
      const s = stats[i] || {};
      const done = num(s.bytesCompleted !== undefined ? s.bytesCompleted : (files[i] || {}).bytesCompleted);
      const p = f.length > 0 ? Math.min(1, done / f.length) : 1;
      if (f.bar.value !== p) f.bar.value = p;
      setText(f.pct, percent(p));
      const w = s.wanted === undefined ? true : !!s.wanted;
      if (w) wanted++;
      const hold = v.hold.get(i);
      if (hold && hold > now) continue;
      if (hold) v.hold.delete(i);
      if (f.cb.checked !== w) f.cb.checked = w;
    }
    setText(v.filesInfo, files.length === 0
      ? 'No file list yet: waiting for the metadata.'
      : wanted + ' of ' + files.length + (files.length === 1 ? ' file' : ' files') + ' wanted');
    setHidden(v.fileTable, files.length === 0);
    setHidden(v.filesAll, files.length === 0);
    setHidden(v.filesNone, files.length === 0);
  }

  function setExpanded(v, open) {
    v.expanded = open;
    v.filesTr.hidden = !open;
    v.toggle.textContent = open ? '\u25be' : '\u25b8';
    v.toggle.title = open ? 'Hide files' : 'Show files';
    v.toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
    v.tr.classList.toggle('open', open);
    if (open) refreshSoon();
  }

  // ---- polling ---------------------------------------------------------------------

  let pollTimer = 0;
  let polling = false;
  let pollAgain = false;

  async function poll() {
    if (polling) {
      pollAgain = true;
      return;
    }
    polling = true;
    clearTimeout(pollTimer);
    try {
      const a = await rpc('torrent-get', { fields: FIELDS });
      render(Array.isArray(a.torrents) ? a.torrents : []);
      const open = [];
      for (const v of views.values()) if (v.expanded) open.push(v.id);
      if (open.length) {
        const b = await rpc('torrent-get', { ids: open, fields: FILE_FIELDS });
        for (const t of Array.isArray(b.torrents) ? b.torrents : []) {
          const v = views.get(keyOf(t));
          if (v && v.expanded) updateFiles(v, t);
        }
      }
      if (msgKind === 'poll') message('');
    } catch (e) {
      message('Daemon: ' + e.message, 'poll');
    } finally {
      polling = false;
      const delay = pollAgain ? 0 : document.hidden ? HIDDEN_POLL_MS : POLL_MS;
      pollAgain = false;
      pollTimer = setTimeout(poll, delay);
    }
  }

  function refreshSoon() {
    if (polling) {
      pollAgain = true;
    } else {
      clearTimeout(pollTimer);
      pollTimer = setTimeout(poll, 0);
    }
  }

  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) refreshSoon();
  });

  // ---- actions on a row ------------------------------------------------------------

  function viewOf(node) {
    const group = node.closest('tbody.item');
    return group ? byGroup.get(group) || null : null;
  }

  async function act(btn, v, method, args, done) {
    btn.disabled = true;
    try {
      await rpc(method, Object.assign({ ids: [v.id] }, args || {}));
      if (done) message(done, 'info');
    } catch (e) {
      message(v.name + ': ' + e.message, 'error');
    } finally {
      btn.disabled = false;
      refreshSoon();
    }
  }

  table.addEventListener('click', function (ev) {
    const btn = ev.target.closest('button');
    if (!btn || !table.contains(btn)) return;
    const v = viewOf(btn);
    if (!v) return;
    if (btn.classList.contains('files-toggle')) {
      setExpanded(v, !v.expanded);
    } else if (btn.classList.contains('pause')) {
      act(btn, v, 'torrent-stop');
    } else if (btn.classList.contains('resume')) {
      act(btn, v, 'torrent-start');
    } else if (btn.classList.contains('remove')) {
      act(btn, v, 'torrent-remove', { 'delete-local-data': false }, 'Removed: ' + v.name);
    } else if (btn.classList.contains('remove-data')) {
      // A second click within a few seconds, instead of a dialog.
      if (!btn.classList.contains('confirm')) {
        btn.classList.add('confirm');
        btn.textContent = 'Confirm';
        btn.title = 'Click again to delete the data';
        setTimeout(function () {
          btn.classList.remove('confirm');
          btn.textContent = 'Delete data';
          btn.title = 'Remove from the list and delete the downloaded data';
        }, 4000);
        return;
      }
      act(btn, v, 'torrent-remove', { 'delete-local-data': true },
        'Removed with its data: ' + v.name);
    } else if (btn.classList.contains('files-all') || btn.classList.contains('files-none')) {
      const n = v.files.length;
      if (n === 0) return; // an empty list would mean "every file"
      const all = [];
      for (let i = 0; i < n; i++) all.push(i);
      const want = btn.classList.contains('files-all');
      const until = Date.now() + 2000;
      for (let i = 0; i < n; i++) {
        v.files[i].cb.checked = want;
        v.hold.set(i, until);
      }
      act(btn, v, 'torrent-set', want ? { 'files-wanted': all } : { 'files-unwanted': all });
    }
  });

  table.addEventListener('change', function (ev) {
    const cb = ev.target;
    if (!(cb instanceof HTMLInputElement) || !cb.classList.contains('wanted')) return;
    const row = cb.closest('tr.file');
    const v = viewOf(cb);
    if (!row || !v) return;
    const i = Number(row.dataset.index);
    const want = cb.checked;
    v.hold.set(i, Date.now() + 60000);
    cb.disabled = true;
    rpc('torrent-set', { ids: [v.id], [want ? 'files-wanted' : 'files-unwanted']: [i] })
      .then(function () {
        v.hold.set(i, Date.now() + 1500);
      })
      .catch(function (e) {
        v.hold.delete(i);
        cb.checked = !want;
        message(v.name + ': ' + e.message, 'error');
      })
      .finally(function () {
        cb.disabled = false;
        refreshSoon();
      });
  });

  // ---- adding ----------------------------------------------------------------------

  const form = document.getElementById('add-form');
  const urlInput = document.getElementById('add-url');
  const addBtn = document.getElementById('add-button');
  const fileInput = document.getElementById('add-file');

  function reportAdded(a, what) {
    const dup = a['torrent-duplicate'];
    const added = a['torrent-added'];
    const t = added || dup;
    if (!t) {
      message('Added ' + what, 'info');
      return;
    }
    const label = t.name || t.hashString || what;
    message((dup ? 'Already in the list: ' : 'Added: ') + label, 'info');
    if (t.hashString) flashKey = t.hashString;
  }

  form.addEventListener('submit', async function (ev) {
    ev.preventDefault();
    const url = urlInput.value.trim();
    if (!url) {
      message('Paste a magnet link or a .torrent URL first.', 'error');
      urlInput.focus();
      return;
    }
    addBtn.disabled = true;
    try {
      const a = await rpc('torrent-add', { filename: url });
      reportAdded(a, 'the link');
      urlInput.value = '';
    } catch (e) {
      message('Could not add the link: ' + e.message, 'error');
    } finally {
      addBtn.disabled = false;
      refreshSoon();
    }
  });

  function readBase64(file) {
    return new Promise(function (resolve, reject) {
      const r = new FileReader();
      r.onload = function () {
        const s = String(r.result);
        const i = s.indexOf(',');
        resolve(i >= 0 ? s.slice(i + 1) : s);
      };
      r.onerror = function () { reject(new Error('cannot read the file')); };
      r.readAsDataURL(file);
    });
  }

  async function addFiles(files) {
    for (const f of files) {
      try {
        if (f.size > MAX_TORRENT_FILE) throw new Error('too big for a .torrent file');
        const b64 = await readBase64(f);
        const a = await rpc('torrent-add', { metainfo: b64 });
        reportAdded(a, f.name);
      } catch (e) {
        message('Could not add ' + f.name + ': ' + e.message, 'error');
      }
    }
    refreshSoon();
  }

  fileInput.addEventListener('change', async function () {
    const files = Array.from(fileInput.files || []);
    if (!files.length) return;
    fileInput.disabled = true;
    try {
      await addFiles(files);
    } finally {
      fileInput.value = '';
      fileInput.disabled = false;
    }
  });

  // .torrent files dropped anywhere on the page.
  function hasFiles(ev) {
    return ev.dataTransfer && Array.from(ev.dataTransfer.types || []).indexOf('Files') >= 0;
  }
  document.addEventListener('dragover', function (ev) {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    document.body.classList.add('dropping');
  });
  document.addEventListener('dragleave', function (ev) {
    if (ev.target === document.documentElement || ev.relatedTarget === null) {
      document.body.classList.remove('dropping');
    }
  });
  document.addEventListener('drop', function (ev) {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    document.body.classList.remove('dropping');
    addFiles(Array.from(ev.dataTransfer.files || []));
  });

  poll();
})();
