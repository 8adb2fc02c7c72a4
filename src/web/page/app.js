/*
 * ft's upload page: hand-written, no build step, no framework. It hashes each file with XXH64
 * (xxhash-wasm) so the receiver can verify it, and uploads it with tus-js-client, which keeps
 * each upload's address in localStorage so that choosing the same file again resumes it.
 *
 * Everything that comes from a file or from the receiver is put on the page with textContent,
 * never as HTML (a file name is data, not markup: LocalSend's CVE-2026-25154).
 */
'use strict';

(function () {
  /** Files uploading at once: enough to hide per-file latency, few enough to keep each one moving. */
  const CONCURRENCY = 3;
  /** tus-js-client waits this long before each new try (a receiver restart takes a few seconds). */
  const RETRY_DELAYS = [0, 1000, 3000, 6000];
  /** Read this much of a file at a time while hashing: bounded memory for any file size. */
  const HASH_CHUNK = 4 * 1024 * 1024;
  /** Rate over this window (ms): steady enough to read, quick enough to follow a change. */
  const RATE_WINDOW_MS = 4000;
  /** Longest server text shown under a file. */
  const MAX_ERROR_CHARS = 300;

  const $ = (id) => document.getElementById(id);

  let info = null;
  let xxhashReady = null;
  let nextId = 1;
  /** Every file chosen on this page, in the order chosen. */
  const items = [];
  let active = 0;
  let renderQueued = false;

  // ---------------------------------------------------------------- formatting

  function formatBytes(bytes) {
    if (bytes < 1000) return bytes + '\u00a0B';
    const units = ['kB', 'MB', 'GB', 'TB'];
    let value = bytes;
    let unit = -1;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return (value >= 100 ? value.toFixed(0) : value.toFixed(1)) + '\u00a0' + units[unit];
  }

  function formatDuration(seconds) {
    if (!isFinite(seconds) || seconds < 0) return '';
    if (seconds < 1) return 'under a second';
    if (seconds < 60) return Math.ceil(seconds) + '\u00a0s';
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + '\u00a0min ' + Math.ceil(seconds % 60) + '\u00a0s';
    return Math.floor(minutes / 60) + '\u00a0h ' + (minutes % 60) + '\u00a0min';
  }

  function percent(done, total) {
    return total === 0 ? 100 : Math.floor((done / total) * 100);
  }

  function show(element, visible) {
    element.hidden = !visible;
  }

  function announce(text) {
    $('announce').textContent = text;
  }

  // ---------------------------------------------------------------- receiver and access

  async function fetchInfo() {
    const response = await fetch('/api/info', { cache: 'no-store', credentials: 'same-origin' });
    if (!response.ok) throw new Error('The receiver answered ' + response.status + ' to /api/info.');
    return response.json();
  }

  function showReceiver() {
    const name = typeof info.name === 'string' && info.name !== '' ? info.name : 'this receiver';
    $('receiver-name').textContent = name;
    document.title = 'Send files to ' + name + ' · ft';
    // The key's fingerprint is what ft prints everywhere; the certificate's SHA-256 is what the
    // browser shows, and only that one the page cannot fake (it comes with the certificate).
    const lines = [
      ['fingerprint', info.fingerprint, '-'],
      ['certificate', info.certificateSha256, ':'],
    ];
    for (const [id, value, separator] of lines) {
      if (typeof value !== 'string' || value === '') continue;
      breakableAt($(id), value, separator);
      show($(id + '-line'), true);
      show($('identity'), true);
    }
    show($('plaintext'), location.protocol === 'http:');
    if (typeof info.warning === 'string' && info.warning !== '') {
      $('warning').textContent = info.warning;
      show($('warning'), true);
    }
    if (typeof info.maxFileSize === 'number' && isFinite(info.maxFileSize)) {
      $('limits').textContent = 'Files up to ' + formatBytes(info.maxFileSize) + ' each.';
      show($('limits'), true);
    }
  }

  /** Text that a narrow screen may wrap only after a separator (a <wbr> each, added as elements). */
  function breakableAt(node, text, separator) {
    node.textContent = '';
    text.split(separator).forEach((part, index, parts) => {
      node.append(index < parts.length - 1 ? part + separator : part);
      if (index < parts.length - 1) node.append(document.createElement('wbr'));
    });
  }

  /** The one-time code from `#code=…`, removed from the address bar (and history) at once. */
  function takeCodeFromAddress() {
    const fragment = location.hash.replace(/^#/, '');
    if (fragment === '') return null;
    const code = new URLSearchParams(fragment).get('code');
    history.replaceState(null, '', location.pathname + location.search);
    return code !== null && code.trim() !== '' ? code.trim() : null;
  }

  /** POST /api/session; resolves to null on success, else the text to show. */
  async function redeem(credential) {
    let response;
    try {
      response = await fetch('/api/session', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(credential),
      });
    } catch (error) {
      return 'The receiver cannot be reached.';
    }
    if (response.ok) return null;
    let message = '';
    try {
      const body = await response.json();
      if (body && typeof body.message === 'string') message = body.message;
    } catch (error) {
      // not JSON: the status says enough
    }
    if (response.status === 403) return message || 'That code or token is not right (or the code was used already).';
    return message || 'The receiver answered ' + response.status + '.';
  }

  /** Whether this browser already holds a session: the endpoint answers 401 before anything else without one. */
  async function hasSession() {
    if (typeof info.session === 'boolean') return info.session;
    try {
      const response = await fetch(info.tusPath, { method: 'HEAD', credentials: 'same-origin', cache: 'no-store' });
      return response.status !== 401 && response.status !== 403;
    } catch (error) {
      return false;
    }
  }

  /** Codes are 12 letters and digits (dashes and spaces do not matter); anything else is a token. */
  function looksLikeCode(text) {
    return /^[a-z2-9]{12}$/i.test(text.replace(/[-\s]/g, ''));
  }

  function askForAccess(message) {
    show($('picker'), false);
    show($('access'), true);
    const error = $('access-error');
    error.textContent = message || '';
    show(error, Boolean(message));
    $('access-input').focus();
  }

  async function onAccessSubmit(event) {
    event.preventDefault();
    const input = $('access-input');
    const text = input.value.trim();
    if (text === '') return askForAccess('Type the access code or the token.');
    const button = $('access-submit');
    button.disabled = true;
    button.textContent = 'Checking…';
    let failure = looksLikeCode(text) ? await redeem({ code: text }) : 'not a code';
    // A token may look like a code: a refused code is tried once as the token.
    if (failure !== null) failure = await redeem({ token: text });
    button.disabled = false;
    button.textContent = 'Unlock';
    if (failure !== null) return askForAccess(failure);
    input.value = '';
    show($('access'), false);
    unlock();
  }

  function unlock() {
    show($('access'), false);
    show($('picker'), true);
    // Files refused for want of a session go again now.
    for (const item of items) if (item.state === 'failed' && item.needsAccess) restart(item);
  }

  // ---------------------------------------------------------------- choosing files

  function addFiles(entries) {
    for (const { file, relativePath } of entries) {
      const key = fileKey(file, relativePath);
      const same = items.find((item) => item.key === key && item.state !== 'done');
      if (same) {
        // Choosing a failed file again resumes it; one still going is left alone.
        if (same.state === 'failed') restart(same, file);
        continue;
      }
      const item = {
        id: nextId++,
        key,
        file,
        relativePath,
        label: relativePath || file.name,
        state: 'queued',
        hash: null,
        hashed: 0,
        sent: 0,
        resumedAt: null,
        error: '',
        needsAccess: false,
        /** Failed for good (too large): trying again cannot help. */
        final: false,
        samples: [],
        upload: null,
        view: null,
      };
      items.push(item);
      item.view = renderItem(item);
      updateItem(item);
    }
    show($('transfers'), items.length > 0);
    pump();
    scheduleRender();
  }

  /** Same path, size and modification time: the same file, as far as a browser can tell. */
  function fileKey(file, relativePath) {
    return [encodeURIComponent(relativePath || file.name), file.size, file.lastModified].join('|');
  }

  function fromInput(input, useRelativePath) {
    const entries = [];
    for (const file of Array.from(input.files || [])) {
      const relative = useRelativePath && file.webkitRelativePath ? file.webkitRelativePath : null;
      entries.push({ file, relativePath: relative });
    }
    input.value = '';
    addFiles(entries);
  }

  /** Every file under a dropped folder, with its path inside the drop ("folder/sub/name"). */
  async function walkEntry(entry, out) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      const path = entry.fullPath.replace(/^\/+/, '');
      out.push({ file, relativePath: path.includes('/') ? path : null });
      return;
    }
    if (!entry.isDirectory) return;
    const reader = entry.createReader();
    // readEntries gives a batch at a time (100 in Chromium) until it gives none.
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (batch.length === 0) break;
      for (const child of batch) await walkEntry(child, out);
    }
  }

  async function onDrop(event) {
    event.preventDefault();
    $('dropzone').classList.remove('over');
    const transfer = event.dataTransfer;
    if (!transfer) return;
    // The item list is only readable during the event: take the entries before awaiting anything.
    const entries = [];
    const plain = [];
    for (const item of Array.from(transfer.items || [])) {
      if (item.kind !== 'file') continue;
      const entry = typeof item.webkitGetAsEntry === 'function' ? item.webkitGetAsEntry() : null;
      if (entry) entries.push(entry);
      else {
        const file = item.getAsFile();
        if (file) plain.push({ file, relativePath: null });
      }
    }
    if (entries.length === 0 && plain.length === 0) {
      for (const file of Array.from(transfer.files || [])) plain.push({ file, relativePath: null });
    }
    const found = plain;
    try {
      for (const entry of entries) await walkEntry(entry, found);
    } catch (error) {
      announce('Some of the dropped files could not be read.');
    }
    addFiles(found);
  }

  // ---------------------------------------------------------------- hashing

  function xxhash() {
    if (xxhashReady === null) {
      if (typeof window.xxhash !== 'function') return Promise.reject(new Error('The hashing library did not load.'));
      xxhashReady = window.xxhash();
    }
    return xxhashReady;
  }

  /** `xxh64:` and 16 hex digits, as the TCP protocol sends it: read a slice at a time. */
  async function hashFile(item) {
    const api = await xxhash();
    const hasher = api.create64();
    const file = item.file;
    for (let offset = 0; offset < file.size; ) {
      const end = Math.min(file.size, offset + HASH_CHUNK);
      const bytes = new Uint8Array(await file.slice(offset, end).arrayBuffer());
      hasher.update(bytes);
      offset = end;
      item.hashed = offset;
      scheduleRender();
    }
    return 'xxh64:' + hasher.digest().toString(16).padStart(16, '0');
  }

  // ---------------------------------------------------------------- uploading

  function pump() {
    while (active < CONCURRENCY) {
      const next = items.find((item) => item.state === 'queued');
      if (!next) return;
      active += 1;
      run(next).finally(() => {
        active -= 1;
        pump();
      });
    }
  }

  function restart(item, file) {
    if (file) item.file = file;
    item.error = '';
    item.needsAccess = false;
    item.samples = [];
    setState(item, 'queued');
    pump();
  }

  /** One file from start to finish (or failure); resolves when it is no longer using a slot. */
  async function run(item) {
    const file = item.file;
    if (typeof info.maxFileSize === 'number' && file.size > info.maxFileSize) {
      item.final = true;
      return fail(item, 'Too large: this receiver takes files up to ' + formatBytes(info.maxFileSize) + '.');
    }
    const metadata = { filename: file.name, filetype: file.type || 'application/octet-stream' };
    if (item.relativePath) metadata.relativePath = item.relativePath;
    setState(item, 'checking');

    return new Promise((resolve) => {
      const ensureHash = async () => {
        if (metadata.hash) return;
        item.hashed = 0;
        setState(item, 'hashing');
        item.hash = item.hash || (await hashFile(item));
        metadata.hash = item.hash;
      };
      const upload = new tus.Upload(file, {
        endpoint: info.tusPath,
        metadata,
        retryDelays: RETRY_DELAYS,
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        // Includes the receiver's key, so one receiver's upload is never resumed on another.
        fingerprint: () => Promise.resolve(['ft', info.fingerprint || location.host, item.key].join('|')),
        async onAfterResponse(req, res) {
          if (req.getMethod() !== 'HEAD') return;
          const status = res.getStatus();
          if (status >= 200 && status < 300) {
            const offset = Number(res.getHeader('Upload-Offset'));
            item.resumedAt = Number.isFinite(offset) && offset > 0 ? offset : item.resumedAt;
          } else if (status >= 400 && status < 500 && status !== 423 && status !== 401) {
            // The earlier upload is gone: tus-js-client creates a new one next, which needs the hash.
            item.resumedAt = null;
            await ensureHash();
          }
        },
        onUploadUrlAvailable() {
          setState(item, 'uploading');
        },
        onProgress(sent) {
          item.sent = sent;
          sample(item);
          setState(item, 'uploading');
        },
        onSuccess() {
          item.sent = file.size;
          item.upload = null;
          setState(item, 'done');
          announce(item.label + ' uploaded.');
          resolve();
        },
        onError(error) {
          item.upload = null;
          fail(item, describeError(error, item));
          resolve();
        },
      });
      item.upload = upload;
      upload
        .findPreviousUploads()
        .then(async (previous) => {
          if (previous.length > 0) {
            // The newest one; the receiver already has the hash of a file it knows.
            previous.sort((a, b) => String(b.creationTime).localeCompare(String(a.creationTime)));
            upload.resumeFromPreviousUpload(previous[0]);
            setState(item, 'resuming');
          } else {
            await ensureHash();
            setState(item, 'starting');
          }
          item.samples = [];
          upload.start();
        })
        .catch((error) => {
          fail(item, error && error.message ? error.message : String(error));
          resolve();
        });
    });
  }

  function fail(item, message) {
    item.error = message;
    setState(item, 'failed');
    announce(item.label + ' failed: ' + message);
  }

  /** A new state is drawn at once (each one is seen, and read out); progress within one waits for a frame. */
  function setState(item, state) {
    if (item.state !== state) {
      item.state = state;
      if (item.view) updateItem(item);
    }
    scheduleRender();
  }

  /** What went wrong, in words: the receiver's own text when it gave one (never HTML: shown as text). */
  function describeError(error, item) {
    const response = error && error.originalResponse;
    const status = response ? response.getStatus() : 0;
    if (status === 401) {
      item.needsAccess = true;
      askForAccess('Your access ended: type the access code or token again.');
      return 'Waiting for the access code.';
    }
    let body = '';
    if (response) {
      try {
        body = String(response.getBody() || '').trim();
      } catch (ignored) {
        body = '';
      }
    }
    if (body.length > MAX_ERROR_CHARS) body = body.slice(0, MAX_ERROR_CHARS) + '…';
    if (status === 0) return 'The receiver cannot be reached (connection lost). Choose the file again or press Retry to go on where it stopped.';
    if (body !== '') return body;
    return 'The receiver answered ' + status + '.';
  }

  function sample(item) {
    const now = performance.now();
    item.samples.push([now, item.sent]);
    while (item.samples.length > 2 && now - item.samples[0][0] > RATE_WINDOW_MS) item.samples.shift();
  }

  /** Bytes per second over the last few seconds, or 0 before there is enough to tell. */
  function rateOf(item) {
    const samples = item.samples;
    if (samples.length < 2) return 0;
    const [t0, b0] = samples[0];
    const [t1, b1] = samples[samples.length - 1];
    return t1 - t0 < 250 ? 0 : ((b1 - b0) * 1000) / (t1 - t0);
  }

  // ---------------------------------------------------------------- rendering

  /** A new element; its text (a file name, say) goes in as text, never parsed as HTML. */
  function element(tag, className, text) {
    const node = document.createElement(tag);
    node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderItem(item) {
    const li = element('li', 'file');
    const head = element('div', 'file-head');
    const name = element('span', 'file-name', item.label);
    name.title = item.label;
    head.append(name, element('span', 'file-size', formatBytes(item.file.size)));
    const bar = element('progress', 'file-bar');
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute('aria-label', 'Progress of ' + item.label);
    const line = element('div', 'file-line');
    const status = element('span', 'file-status');
    const retry = element('button', 'retry secondary', 'Retry');
    retry.type = 'button';
    retry.setAttribute('aria-label', 'Retry ' + item.label);
    retry.hidden = true;
    retry.addEventListener('click', () => restart(item));
    line.append(status, retry);
    li.append(head, bar, line);
    $('files').append(li);
    return { li, bar, status, retry };
  }

  function statusText(item) {
    const size = item.file.size;
    switch (item.state) {
      case 'queued':
        return 'Waiting';
      case 'checking':
        return 'Looking for an earlier upload';
      case 'hashing':
        return 'Hashing ' + percent(item.hashed, size) + '%';
      case 'starting':
        return 'Starting';
      case 'resuming':
        return 'Resuming';
      case 'uploading': {
        const rate = rateOf(item);
        const parts = [];
        if (item.resumedAt !== null) parts.push('Resumed at ' + formatBytes(item.resumedAt));
        parts.push('Uploading ' + percent(item.sent, size) + '%');
        if (rate > 0) {
          parts.push(formatBytes(rate) + '/s');
          const left = formatDuration((size - item.sent) / rate);
          if (left) parts.push(left + ' left');
        }
        return parts.join(' · ');
      }
      case 'done':
        return item.resumedAt !== null ? 'Done, verified (resumed at ' + formatBytes(item.resumedAt) + ')' : 'Done, verified';
      case 'failed':
        return 'Failed: ' + item.error;
      default:
        return '';
    }
  }

  function updateItem(item) {
    const { li, bar, status, retry } = item.view;
    const size = item.file.size;
    li.className = 'file state-' + item.state;
    li.dataset.state = item.state;
    if (item.state === 'hashing') {
      bar.value = size === 0 ? 1 : item.hashed / size;
    } else if (item.state === 'done') {
      bar.value = 1;
    } else {
      bar.value = size === 0 ? 0 : item.sent / size;
    }
    status.textContent = statusText(item);
    retry.hidden = !(item.state === 'failed' && !item.needsAccess && !item.final);
  }

  function updateTotal() {
    let total = 0;
    let sent = 0;
    let rate = 0;
    let done = 0;
    let failed = 0;
    for (const item of items) {
      if (item.state === 'failed') failed += 1;
      // A failed file is not moving: counting its bytes would make the time left a guess.
      if (item.state === 'failed') continue;
      total += item.file.size;
      sent += item.state === 'done' ? item.file.size : item.sent;
      if (item.state === 'uploading') rate += rateOf(item);
      if (item.state === 'done') done += 1;
    }
    const bar = $('total-bar');
    bar.value = total === 0 ? (done === items.length ? 1 : 0) : sent / total;
    const parts = [done + ' of ' + items.length + (items.length === 1 ? ' file' : ' files') + ' done'];
    parts.push(formatBytes(sent) + ' of ' + formatBytes(total));
    if (rate > 0) {
      parts.push(formatBytes(rate) + '/s');
      const left = formatDuration((total - sent) / rate);
      if (left) parts.push(left + ' left');
    }
    if (failed > 0) parts.push(failed + ' failed');
    $('total-text').textContent = parts.join(' · ');
  }

  /** Progress events come faster than anyone reads: draw at most once per frame. */
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      for (const item of items) updateItem(item);
      updateTotal();
    });
  }

  // ---------------------------------------------------------------- start

  function wire() {
    $('pick-files').addEventListener('click', () => $('file-input').click());
    $('pick-folder').addEventListener('click', () => $('folder-input').click());
    $('file-input').addEventListener('change', () => fromInput($('file-input'), false));
    $('folder-input').addEventListener('change', () => fromInput($('folder-input'), true));
    show($('pick-folder'), 'webkitdirectory' in $('folder-input'));
    const zone = $('dropzone');
    zone.addEventListener('dragover', (event) => {
      event.preventDefault();
      zone.classList.add('over');
    });
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    zone.addEventListener('drop', onDrop);
    // A file dropped beside the zone must not make the browser navigate away from the page.
    window.addEventListener('dragover', (event) => event.preventDefault());
    window.addEventListener('drop', (event) => event.preventDefault());
    $('access-form').addEventListener('submit', onAccessSubmit);
  }

  function fatal(message) {
    $('fatal').textContent = message;
    show($('fatal'), true);
  }

  async function start() {
    wire();
    const code = takeCodeFromAddress();
    if (typeof tus === 'undefined' || !tus.isSupported) return fatal('This browser cannot upload from this page (no tus support).');
    try {
      info = await fetchInfo();
    } catch (error) {
      return fatal('The receiver cannot be reached: ' + (error && error.message ? error.message : String(error)));
    }
    showReceiver();
    if (info.access !== 'token') return unlock();
    if (code !== null) {
      const failure = await redeem({ code });
      if (failure === null) return unlock();
      return askForAccess('The code in the link did not work: ' + failure);
    }
    if (await hasSession()) return unlock();
    askForAccess('');
  }

  start();
})();
