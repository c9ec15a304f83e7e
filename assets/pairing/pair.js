// The pairing page's script (src/pairing, served by wagate; no dependencies).
//
// It follows the session over Server-Sent Events (`{base}/events`):
//   state   -> the state in plain words (page/StateView: message, done,
//              can_restart, show_qr, can_pair_code)
//   qr      -> {svg, expires_at_ms}: the current QR code, rendered by the server
//   expired -> the link expired
// Once the page is done (connected, deleted, expired) it closes the stream and
// stops updating. All words come from the server's catalogue (#pair-strings).
(function () {
  'use strict';

  var root = document.getElementById('pairing');
  var catalogue = document.getElementById('pair-strings');
  if (!root || !catalogue) { return; }
  var strings = JSON.parse(catalogue.textContent);

  var base = root.getAttribute('data-base');
  var expiresAt = Number(root.getAttribute('data-expires-at-ms'));
  // The phone's clock may be wrong: count down on the server's.
  var skew = Number(root.getAttribute('data-server-now-ms')) - Date.now();

  var stateEl = document.getElementById('state');
  var scanEl = document.getElementById('scan');
  var qrEl = document.getElementById('qr');
  var countdownEl = document.getElementById('countdown');
  var restartEl = document.getElementById('restart');
  var phoneEl = document.getElementById('phone');
  var form = document.getElementById('pair-code-form');
  var submitEl = document.getElementById('phone-submit');
  var errorEl = document.getElementById('phone-error');
  var codeBox = document.getElementById('pair-code');
  var codeEl = document.getElementById('pair-code-value');

  var source = null;
  var finished = false;
  var timer = null;

  function fill(template, name, value) {
    return template.split('{' + name + '}').join(value);
  }

  function show(el, visible) { el.hidden = !visible; }

  function setMessage(code, message) {
    root.setAttribute('data-state', code);
    stateEl.textContent = message;
  }

  function finish(code, message) {
    finished = true;
    if (source) { source.close(); source = null; }
    if (timer) { clearInterval(timer); timer = null; }
    setMessage(code, message);
    show(scanEl, false);
    show(restartEl, false);
    show(countdownEl, false);
    // A pair code already shown stays readable; the form goes.
    show(form, false);
    if (codeBox.hidden) { show(phoneEl, false); }
    qrEl.textContent = '';
  }

  function onState(view) {
    if (view.done) { finish(view.state, view.message); return; }
    setMessage(view.state, view.message);
    show(scanEl, view.show_qr);
    show(restartEl, view.can_restart);
    show(phoneEl, view.can_pair_code || !codeBox.hidden);
    show(form, view.can_pair_code);
  }

  function onQr(qr) {
    // Markup produced by the server's QR renderer (no scripts, no styles).
    qrEl.innerHTML = qr.svg;
    root.setAttribute('data-qr-expires-at-ms', String(qr.expires_at_ms));
  }

  function parse(event) {
    try { return JSON.parse(event.data); } catch (e) { return null; }
  }

  function connect() {
    if (finished || source) { return; }
    source = new EventSource(base + '/events');
    source.addEventListener('state', function (e) { var v = parse(e); if (v) { onState(v); } });
    source.addEventListener('qr', function (e) { var v = parse(e); if (v) { onQr(v); } });
    source.addEventListener('expired', function () { finish('expired', strings.expired_title + '. ' + strings.expired_body); });
    source.onerror = function () {
      // CLOSED: the server refused the stream (link expired or revoked while
      // away); otherwise the browser reconnects by itself.
      if (source && source.readyState === EventSource.CLOSED && !finished) {
        source = null;
        setMessage('connection_lost', strings.connection_lost);
      }
    };
  }

  function tick() {
    var left = expiresAt - (Date.now() + skew);
    if (left <= 0) {
      finish('expired', strings.expired_title + '. ' + strings.expired_body);
      return;
    }
    var seconds = Math.ceil(left / 1000);
    var minutes = Math.floor(seconds / 60);
    var rest = seconds % 60;
    countdownEl.textContent = fill(strings.countdown, 'time', minutes + ':' + (rest < 10 ? '0' : '') + rest);
  }

  function post(path, body) {
    var init = { method: 'POST', headers: { 'Accept': 'application/json' }, credentials: 'same-origin' };
    if (body) {
      init.headers['Content-Type'] = 'application/x-www-form-urlencoded';
      init.body = body;
    }
    return fetch(base + path, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { ok: response.ok, data: data };
      });
    });
  }

  restartEl.addEventListener('click', function () {
    restartEl.disabled = true;
    post('/start').then(function () {
      restartEl.disabled = false;
      connect();
    }, function () {
      restartEl.disabled = false;
      setMessage('connection_lost', strings.connection_lost);
    });
  });

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    show(errorEl, false);
    submitEl.disabled = true;
    var label = submitEl.textContent;
    submitEl.textContent = strings.phone_working;
    var body = 'phone=' + encodeURIComponent(document.getElementById('phone-input').value);
    post('/pair-code', body).then(function (result) {
      submitEl.disabled = false;
      submitEl.textContent = label;
      if (result.ok && result.data.code) {
        codeEl.textContent = result.data.display || result.data.code;
        codeEl.setAttribute('data-code', result.data.code);
        show(codeBox, true);
        codeBox.focus();
      } else {
        var error = result.data && result.data.error;
        errorEl.textContent = (error && error.message) || strings.error_pair_code;
        show(errorEl, true);
      }
    }, function () {
      submitEl.disabled = false;
      submitEl.textContent = label;
      errorEl.textContent = strings.connection_lost;
      show(errorEl, true);
    });
  });

  tick();
  if (!finished) {
    timer = setInterval(tick, 1000);
    connect();
  }
}());
