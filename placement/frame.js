/*
 * Keeps the Bitrix24 frame as tall as the page, after every change of its content (the log
 * after a filter, replay progress, the rules editor, a chart drawn late), served at
 * /assets/frame.js after the BX24 library.
 *
 * BX24.fitWindow() alone is not enough: it measures the document's scroll size, which is
 * never smaller than the frame, so "due to browser limitations, the method can only increase
 * the frame size"; the docs advise measuring a container and calling BX24.resizeWindow
 * (bitrix24/b24restdocs: api-reference/bx24-js-sdk/additional-functions/bx24-fit-window.md,
 * bx24-resize-window.md). The body is that container: a ResizeObserver sees every change
 * of its size, and the frame is resized once per change, to the body's height.
 */
(function () {
  'use strict';
  // `autofocus` is refused in a cross-origin frame ("Blocked autofocusing on a <input>
  // element in a cross-origin subframe"), and inside Bitrix24 the app always is one: the
  // control a page marks with data-focus (a refused field, a code to type) takes the keyboard.
  var wanted = document.querySelector('[data-focus]');
  if (wanted && typeof wanted.focus === 'function') wanted.focus();
  if (!window.BX24) return;

  var sent = -1;
  var queued = false;

  function contentHeight() {
    var body = document.body;
    return Math.ceil(Math.max(body.scrollHeight, body.getBoundingClientRect().height));
  }

  function fit() {
    queued = false;
    var height = contentHeight();
    if (height === sent) return;
    sent = height;
    document.documentElement.setAttribute('data-frame-height', String(height));
    window.BX24.resizeWindow('100%', height);
  }

  function schedule() {
    if (queued) return;
    queued = true;
    setTimeout(fit, 0);
  }

  window.BX24.init(function () {
    fit();
    if (typeof window.ResizeObserver === 'function') {
      new window.ResizeObserver(schedule).observe(document.body);
    } else {
      new MutationObserver(schedule).observe(document.body, {
        childList: true,
        subtree: true,
        attributes: true,
        characterData: true,
      });
      window.addEventListener('resize', schedule);
    }
    window.addEventListener('load', schedule);
  });
})();
