/*
 * Keeps the Bitrix24 frame as tall as the page, after every change of its content (the log
 * after a filter, replay progress, the rules editor, a chart drawn late), served at
 * /assets/frame.js after the BX24 library.
 *
 * BX24.fitWindow() alone is not enough: it measures the document's scroll size, which is
 * never smaller than the frame, so "due to browser limitations, the method can only increase
 * the frame size" (bitrix24/b24restdocs: sdk/bx24-js-sdk/additional-functions/
 * bx24-fit-window.md). The body is the container to measure: a ResizeObserver sees every
 * change of its size, and the frame is resized once per change, to the body's height.
 *
 * Not with BX24.resizeWindow('100%', h): it takes pixels only, "parsed using parseInt and
 * only used if greater than 0" (bx24-resize-window.md), so '100%' went out as 100 and the
 * portal set the frame 100 px wide (its applayout.js resizeWindow: any width but the string
 * '100%' becomes pixels). fitWindow is the call that sends '100%', with the height it reads
 * from BX24.getScrollSize().scrollHeight (bx24-fit-window.md: "utilizes
 * BX24.getScrollSize().scrollHeight in its implementation"): for that call, getScrollSize
 * answers the body's height.
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
    var bx = window.BX24;
    if (typeof bx.fitWindow !== 'function' || typeof bx.getScrollSize !== 'function') {
      // Another build of the library: pixels, the frame's width as it is now.
      bx.resizeWindow(document.documentElement.clientWidth || window.innerWidth, height);
      return;
    }
    var own = bx.getScrollSize;
    bx.getScrollSize = function () {
      var size = own.call(bx);
      return { scrollWidth: size.scrollWidth, scrollHeight: height };
    };
    try {
      bx.fitWindow();
    } finally {
      bx.getScrollSize = own;
    }
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
