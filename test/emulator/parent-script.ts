/**
 * Script of the emulated Bitrix24 page that hosts app frames. It posts each frame's form,
 * answers the frame's BX24 messages (`command:params:callbackKey:appSid`, the protocol of
 * the real BX24 library and of b24jssdk's B24Frame) and, on `setInstallFinish`, asks the
 * emulator to finish the install, then swaps the installer frame for the app page.
 * Frame forms come from a JSON block with id `b24emu-frames`: `{ [appSid]: {form, user} }`.
 */
export const PARENT_SCRIPT_JS = String.raw`(function () {
  'use strict';
  var frames = JSON.parse(document.getElementById('b24emu-frames').textContent || '{}');

  function frameEl(sid) { return document.querySelector('iframe[data-sid="' + sid + '"]'); }

  function submitForm(form) {
    var f = document.createElement('form');
    f.method = 'post';
    f.action = form.action;
    f.target = form.frameName;
    f.style.display = 'none';
    form.fields.forEach(function (pair) {
      var input = document.createElement('input');
      input.type = 'hidden';
      input.name = pair[0];
      input.value = pair[1];
      f.appendChild(input);
    });
    document.body.appendChild(f);
    f.submit();
    f.remove();
  }

  /** A new iframe (a new APP_SID, so a new window.name) replacing the old one. */
  function replaceFrame(oldSid, form) {
    var old = frameEl(oldSid);
    var entry = frames[oldSid];
    delete frames[oldSid];
    var el = document.createElement('iframe');
    el.name = form.frameName;
    el.setAttribute('data-sid', form.appSid);
    el.className = old ? old.className : 'b24emu-frame';
    el.style.height = old ? old.style.height : '';
    if (old) old.replaceWith(el); else document.querySelector('main').appendChild(el);
    frames[form.appSid] = { form: form, user: entry ? entry.user : 1 };
    submitForm(form);
  }

  /** The portal's slider: a frame over the page with a close button; one at a time. */
  function openSlider(src, onClose) {
    var old = document.getElementById('b24emu-slider');
    if (old) old.remove();
    var box = document.createElement('div');
    box.id = 'b24emu-slider';
    box.setAttribute('data-path', src);
    box.style.cssText = 'position:fixed;top:0;right:0;bottom:0;width:80%;background:#fff;border-left:1px solid #999;z-index:10';
    var close = document.createElement('button');
    close.type = 'button';
    close.id = 'b24emu-slider-close';
    close.textContent = 'Close';
    close.addEventListener('click', function () { box.remove(); onClose(); });
    var frame = document.createElement('iframe');
    frame.src = src;
    frame.style.cssText = 'width:100%;height:calc(100% - 2em);border:0';
    box.appendChild(close);
    box.appendChild(frame);
    document.body.appendChild(box);
  }

  function postJson(path, body) {
    return fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    }).then(function (r) { return r.json(); });
  }

  window.addEventListener('message', function (ev) {
    if (typeof ev.data !== 'string') return;
    var parts = ev.data.split(':');
    if (parts.length < 3) return;
    var command = parts[0];
    var sid = parts[parts.length - 1];
    var key = parts[parts.length - 2];
    var raw = parts.slice(1, -2).join(':');
    var entry = frames[sid];
    var el = frameEl(sid);
    if (!entry || !el || ev.source !== el.contentWindow) return;
    var params = {};
    if (raw) { try { params = JSON.parse(raw); } catch (e) { params = raw; } }
    var source = ev.source;
    var origin = ev.origin;
    function reply(data) { source.postMessage(key + ':' + JSON.stringify(data === undefined ? {} : data), origin); }

    switch (command) {
      case 'getInitData':
        reply(entry.form.initData);
        break;
      case 'resizeWindow': {
        // The portal page sets the frame element's size as the core's rest module does
        // (js/rest/applayout.js, MessageInterface resizeWindow): the string '100%' is kept,
        // any other width is pixels (parseInt, 100 when there is none), the height is
        // pixels, each set when there is one.
        var h = parseInt(params && params.height, 10);
        var w = params && params.width;
        w = w == '100%' ? w : (parseInt(w, 10) || 100) + 'px';
        if (h) el.style.height = h + 'px';
        if (w) el.style.width = w;
        reply({ width: w, height: h });
        break;
      }
      case 'refreshAuth':
        postJson('/__emulator/refresh-auth', { user: entry.user }).then(function (auth) {
          for (var k in auth) entry.form.initData[k] = auth[k];
          reply(auth);
        });
        break;
      case 'setInstallFinish':
      case 'installFinish':
        postJson('/__emulator/install-finish', { user: entry.user }).then(function (res) {
          reply({});
          document.body.setAttribute('data-install-state', res.installState);
          if (res.form) replaceFrame(sid, res.form);
        });
        break;
      case 'openPath': {
        // The paths the portal's slider opens: the regular expression b24jssdk notes for it
        // (src/frame/slider.ts, openPath's @memo), which is the prefix list of
        // b24restdocs sdk/bx24-js-sdk/additional-functions/bx24-open-path.md. Anything else
        // answers PATH_NOT_AVAILABLE and opens nothing; in the mobile app (the page opened
        // with ?device=mobile) every call answers METHOD_NOT_SUPPORTED_ON_DEVICE ("does not
        // work in the mobile application"). The slider is a frame over the page; closing it
        // answers {result:'close'}. Before opening, the service parameters
        // from=rest_placement&from_app are added to the path (the same page).
        var path = params && typeof params.path === 'string' ? params.path : '';
        if (/[?&]device=mobile(&|$)/.test(location.search)) {
          reply({ result: 'error', errorCode: 'METHOD_NOT_SUPPORTED_ON_DEVICE' });
          break;
        }
        if (!/^\/(crm\/(deal|lead|contact|company|type)|marketplace|company\/personal\/user\/[0-9]+|workgroups\/group\/[0-9]+)\//.test(path)) {
          reply({ result: 'error', errorCode: 'PATH_NOT_AVAILABLE' });
          break;
        }
        openSlider(path + (path.indexOf('?') < 0 ? '?' : '&') + 'from=rest_placement&from_app=' + encodeURIComponent(sid), function () {
          reply({ result: 'close' });
        });
        break;
      }
      case 'reloadWindow':
        reply({});
        location.reload();
        break;
      case 'setTitle':
        if (params && params.title) document.title = String(params.title);
        reply({});
        break;
      default:
        reply({});
    }
  });

  Object.keys(frames).forEach(function (sid) { submitForm(frames[sid].form); });
})();
`;
