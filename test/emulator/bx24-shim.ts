/**
 * A small stand-in for Bitrix24's BX24 library (`//api.bitrix24.com/api/v1/`), served at
 * `/bx24.js` on each portal. It speaks the same postMessage protocol as the real library and
 * as b24jssdk's B24Frame: the frame sends `command:params:callbackKey:appSid` to the parent
 * (origin taken from `window.name = "DOMAIN|PROTOCOL|APP_SID"`), the parent answers
 * `callbackKey:json`. So an app may use either this shim or b24jssdk against the emulator.
 */
export const BX24_SHIM_JS = String.raw`(function () {
  'use strict';
  var parts = String(window.name || '').split('|');
  var domain = parts[0] || '';
  var origin = (parts[1] === '1' ? 'https' : 'http') + '://' + domain;
  var appSid = parts[2] || '';
  var callbacks = {};
  var seq = 0;
  var initData = null;
  var authExpiresAt = 0;
  var waiting = [];
  var initRequested = false;

  function send(command, params, callback) {
    seq += 1;
    var key = 'bx' + seq + '_' + Date.now().toString(36);
    if (callback) callbacks[key] = callback;
    var payload = params === undefined || params === null ? '' : JSON.stringify(params) + ':';
    parent.postMessage(command + ':' + payload + key + ':' + appSid, origin);
  }

  window.addEventListener('message', function (ev) {
    if (ev.origin !== origin || typeof ev.data !== 'string') return;
    var i = ev.data.indexOf(':');
    var key = i < 0 ? ev.data : ev.data.slice(0, i);
    var cb = callbacks[key];
    if (!cb) return;
    delete callbacks[key];
    var args;
    try { args = i < 0 ? undefined : JSON.parse(ev.data.slice(i + 1)); } catch (e) { args = undefined; }
    cb(args);
  });

  function setAuth(data) {
    if (!initData) initData = {};
    for (var k in data) initData[k] = data[k];
    authExpiresAt = Date.now() + Number(initData.AUTH_EXPIRES || 3600) * 1000;
  }

  function makeResult(status, body) {
    return {
      answer: body,
      status: status,
      data: function () { return body.result; },
      error: function () { return body.error ? body.error + ': ' + (body.error_description || '') : undefined; },
      error_description: function () { return body.error_description; },
      more: function () { return typeof body.next === 'number'; },
      total: function () { return body.total; },
    };
  }

  var BX24 = {
    init: function (cb) {
      if (initData) { if (cb) cb(); return; }
      if (cb) waiting.push(cb);
      if (initRequested) return;
      initRequested = true;
      send('getInitData', null, function (data) {
        setAuth(data || {});
        var list = waiting; waiting = [];
        list.forEach(function (f) { f(); });
      });
    },
    isAdmin: function () { return !!(initData && initData.IS_ADMIN); },
    getLang: function () { return (initData && initData.LANG) || 'en'; },
    getDomain: function () { return domain; },
    getAuth: function () {
      if (!initData || Date.now() >= authExpiresAt) return false;
      return {
        access_token: initData.AUTH_ID,
        refresh_token: initData.REFRESH_ID,
        expires_in: Number(initData.AUTH_EXPIRES),
        domain: domain,
        member_id: initData.MEMBER_ID,
      };
    },
    refreshAuth: function (cb) {
      send('refreshAuth', null, function (data) { setAuth(data || {}); if (cb) cb(BX24.getAuth()); });
    },
    placement: {
      info: function () {
        return {
          placement: (initData && initData.PLACEMENT) || 'DEFAULT',
          options: (initData && initData.PLACEMENT_OPTIONS) || {},
        };
      },
    },
    // As the BX24 library (api.bitrix24.com/api/v1) does: resizeWindow sends pixels only,
    // both figures "parsed using parseInt and only used if greater than 0" (bitrix24/
    // b24restdocs: sdk/bx24-js-sdk/additional-functions/bx24-resize-window.md), so '100%'
    // goes out as 100; fitWindow sends width '100%' and the height of
    // BX24.getScrollSize().scrollHeight (bx24-fit-window.md), read at the call, the
    // document's scroll size: never below the frame's own height, so it "can only increase
    // the frame size". parent-script.ts sizes the frame.
    resizeWindow: function (width, height, cb) {
      width = parseInt(width, 10); height = parseInt(height, 10);
      if (width > 0 && height > 0) {
        send('resizeWindow', { width: width, height: height }, function () { if (cb) cb(); });
      }
    },
    fitWindow: function (cb) {
      send('resizeWindow', { width: '100%', height: BX24.getScrollSize().scrollHeight }, function () { if (cb) cb(); });
    },
    getScrollSize: function () {
      var d = document.documentElement;
      return {
        scrollWidth: Math.max(d.scrollWidth, d.offsetWidth),
        scrollHeight: Math.max(d.scrollHeight, d.offsetHeight),
      };
    },
    // BX24.openPath(path, cb) (bitrix24/b24restdocs: sdk/bx24-js-sdk/additional-functions/
    // bx24-open-path.md): the portal opens the path in its slider and calls back
    // {result:'close'} when the slider is closed, or {result:'error', errorCode} at once
    // (PATH_NOT_AVAILABLE, METHOD_NOT_SUPPORTED_ON_DEVICE). parent-script.ts decides.
    openPath: function (path, cb) {
      send('openPath', { path: String(path) }, function (res) { if (cb) cb(res); });
    },
    reloadWindow: function () { send('reloadWindow', null, null); },
    setTitle: function (title, cb) { send('setTitle', { title: String(title) }, function () { if (cb) cb(); }); },
    installFinish: function () { send('setInstallFinish', null, null); },
    callMethod: function (method, params, cb) {
      var body = {};
      for (var k in params || {}) body[k] = params[k];
      body.auth = initData && initData.AUTH_ID;
      fetch(origin + '/rest/' + method + '.json', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      })
        .then(function (r) { return r.json().then(function (j) { return makeResult(r.status, j); }); })
        .then(function (result) { if (cb) cb(result); })
        .catch(function (e) { if (cb) cb(makeResult(0, { error: 'NETWORK_ERROR', error_description: String(e) })); });
    },
  };
  window.BX24 = BX24;
})();
`;
