/* hlsedge embed player. ES5 on purpose: Smart TV and set-top box browsers run old engines.
 * Everything the page shows is set with textContent; nothing from the URL or the server is parsed as HTML. */
(function () {
  'use strict';

  var body = document.body;
  var video = document.getElementById('video');
  var msg = document.getElementById('msg');
  var detail = document.getElementById('detail');
  var retryButton = document.getElementById('retry');

  var CHECK_TIMEOUT_MS = 10000;  // the first playlist request
  var START_TIMEOUT_MS = 20000;  // from a good playlist to the first frame
  var RETRY_MS = 5000;           // origin trouble is often brief: retry a few times on our own
  var MAX_AUTO_RETRIES = 5;

  var MESSAGES = {
    0: 'Cannot reach the video server. Check the connection and try again.',
    401: 'This stream needs an access link. Open the player with the full link you were given, including its token.',
    403: 'Access denied: this link does not open this stream.',
    404: 'This stream does not exist.',
    410: 'This link has expired. Ask for a new link.',
    429: 'Too many requests right now. Wait a minute and try again.',
    502: 'The stream is not available right now: its source is not answering.',
    503: 'The stream is not available right now: its source is not answering.',
    504: 'The stream is not available right now: its source is too slow to answer.'
  };
  var RETRYABLE = { 0: true, 502: true, 503: true, 504: true };

  // The player's own parameters are not passed on to the playlist: they would only reach the origin's cache key.
  var PLAYER_PARAMS = { engine: true, muted: true, autoplay: true };

  function parseSearch(search) {
    var opts = {};
    var keep = [];
    var parts = search.replace(/^\?/, '').split('&');
    for (var i = 0; i < parts.length; i++) {
      if (!parts[i]) continue;
      var eq = parts[i].indexOf('=');
      var name = eq < 0 ? parts[i] : parts[i].slice(0, eq);
      if (PLAYER_PARAMS.hasOwnProperty(name)) {
        var v = eq < 0 ? '' : parts[i].slice(eq + 1);
        try { v = decodeURIComponent(v.replace(/\+/g, ' ')); } catch (e) { v = ''; }
        opts[name] = v;
      } else {
        // Kept byte for byte, so the token reaches the edge exactly as it was issued.
        keep.push(parts[i]);
      }
    }
    return { opts: opts, query: keep.join('&') };
  }

  var parsed = parseSearch(window.location.search);
  var opts = parsed.opts;
  var path = window.location.pathname;
  // /{stream}/embed.html plays /{stream}/index.m3u8 (and /play/{channel}/embed.html plays /play/{channel}/index.m3u8).
  var src = path.replace(/[^\/]*$/, 'index.m3u8') + (parsed.query ? '?' + parsed.query : '');
  var streamName = path.replace(/\/[^\/]*$/, '').replace(/^.*\//, '');
  if (streamName) document.title = streamName;

  var generation = 0; // events from an attempt that was torn down are ignored
  var hls = null;
  var timers = [];
  var autoRetries = 0;
  var mediaRecoveries = 0;

  function setState(state) { body.setAttribute('data-state', state); }
  function state() { return body.getAttribute('data-state'); }

  function show(text, status, extra) {
    msg.textContent = text;
    detail.textContent = extra || '';
    body.setAttribute('data-status', status === undefined || status === null ? '' : String(status));
  }

  function later(fn, ms) { timers.push(setTimeout(fn, ms)); }

  function stop() {
    generation++;
    for (var i = 0; i < timers.length; i++) clearTimeout(timers[i]);
    timers = [];
    var h = hls;
    hls = null;
    if (h) {
      // Destroying hls.js from inside its own event callback is not safe in every version.
      setTimeout(function () { h.destroy(); }, 0);
    }
    if (video.getAttribute('src')) {
      video.removeAttribute('src');
      try { video.load(); } catch (e) { /* nothing to unload */ }
    }
  }

  function firstLine(text) {
    var line = String(text || '').split('\n')[0].replace(/^\s+|\s+$/g, '');
    return line.length > 200 ? line.slice(0, 200) + '…' : line;
  }

  // fail ends the attempt with a message a viewer can act on; it never leaves a spinner running.
  function fail(status, reason) {
    stop();
    setState('error');
    var text = MESSAGES.hasOwnProperty(status) ? MESSAGES[status] : 'The stream cannot be played (error ' + status + ').';
    if (typeof status === 'string') text = status;
    var extra = reason || '';
    if (RETRYABLE[status] && autoRetries < MAX_AUTO_RETRIES) {
      autoRetries++;
      extra = (extra ? extra + ' — ' : '') + 'retrying in ' + (RETRY_MS / 1000) + ' s (' + autoRetries + ' of ' + MAX_AUTO_RETRIES + ')';
      later(start, RETRY_MS);
      retryButton.hidden = true;
    } else {
      retryButton.hidden = false;
    }
    show(text, typeof status === 'number' ? status : '', extra);
  }

  // check asks for the playlist the way the player will, and hands over its status and the edge's one-line reason.
  function check(done) {
    var gen = generation;
    var x = new XMLHttpRequest();
    var finished = false;
    function finish(status, text) {
      if (finished || gen !== generation) return;
      finished = true;
      done(status, text);
    }
    x.open('GET', src, true);
    x.timeout = CHECK_TIMEOUT_MS;
    x.onload = function () { finish(x.status, x.responseText); };
    x.onerror = function () { finish(0, ''); };
    x.ontimeout = function () { finish(0, ''); };
    x.send();
  }

  // recheck finds out why playback stopped: an expired or revoked token shows as the playlist's status. When the
  // stream is fine, playback restarts on its own a bounded number of times (the count resets once it plays).
  function recheck(fallback) {
    check(function (status, text) {
      if (status !== 200) { fail(status, firstLine(text)); return; }
      if (!fallback && autoRetries < MAX_AUTO_RETRIES) {
        autoRetries++;
        start();
        return;
      }
      fail(fallback || 'Playback failed. Try again.', '');
    });
  }

  function nativeHLS() {
    return !!(video.canPlayType && video.canPlayType('application/vnd.apple.mpegurl'));
  }

  function chooseEngine() {
    var engine = opts.engine || 'auto';
    if (engine === 'native') return nativeHLS() ? 'native' : '';
    if (engine === 'hlsjs') return 'hlsjs';
    // Safari, iOS and Smart TV browsers play HLS themselves; everything else gets hls.js over Media Source.
    return nativeHLS() ? 'native' : 'hlsjs';
  }

  function start() {
    stop();
    retryButton.hidden = true;
    setState('checking');
    show('Loading…', '', '');
    check(function (status, text) {
      if (status !== 200) { fail(status, firstLine(text)); return; }
      if (String(text).indexOf('#EXTM3U') !== 0) { fail('The server did not answer with a stream playlist.', ''); return; }
      play();
    });
  }

  function play() {
    var gen = generation;
    var engine = chooseEngine();
    body.setAttribute('data-engine', engine);
    setState('loading');
    later(function () {
      if (gen !== generation || state() === 'playing' || state() === 'ready') return;
      recheck('The stream is taking too long to start. Try again.');
    }, START_TIMEOUT_MS);
    video.muted = opts.muted !== '0';
    video.autoplay = opts.autoplay !== '0';
    if (engine === 'native') {
      video.src = src;
      return;
    }
    if (engine === '') { fail('This browser cannot play HLS video.', ''); return; }
    loadHlsJs(function (ok) {
      if (gen !== generation) return;
      if (!ok) { fail('The video player could not be loaded.', ''); return; }
      if (!window.Hls.isSupported()) {
        fail(nativeHLS() ? 'The video player could not be loaded.' : 'This browser cannot play HLS video.', '');
        return;
      }
      attachHlsJs(gen);
    });
  }

  function loadHlsJs(done) {
    if (window.Hls) { done(true); return; }
    var url = body.getAttribute('data-hlsjs');
    if (!url) { done(false); return; }
    var s = document.createElement('script');
    s.src = url;
    s.onload = function () { done(!!window.Hls); };
    s.onerror = function () { done(false); };
    document.head.appendChild(s);
  }

  function attachHlsJs(gen) {
    var Hls = window.Hls;
    hls = new Hls({ enableWorker: true });
    hls.on(Hls.Events.ERROR, function (event, data) {
      if (gen !== generation || !data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries < 2) {
        mediaRecoveries++;
        hls.recoverMediaError();
        return;
      }
      // The answer the player got may be stale or transient; a fresh request tells the viewer the real state.
      recheck();
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  }

  video.addEventListener('playing', function () {
    if (state() === 'error') return;
    setState('playing');
    body.setAttribute('data-played', '1'); // never cleared: tells a stop after playback from a failure to start
    autoRetries = 0;
  });
  video.addEventListener('canplay', function () {
    // Paused at the first frame: autoplay is off, or the browser blocked it. The controls take it from here.
    if (state() === 'loading' && video.paused) setState('ready');
  });
  video.addEventListener('error', function () {
    // Native playback reports every failure the same way; the playlist's status tells which it was.
    if (!video.getAttribute('src') || body.getAttribute('data-engine') !== 'native' || state() === 'error') return;
    recheck();
  });
  video.addEventListener('pause', function () {
    if (state() === 'playing') setState('ready');
  });
  retryButton.addEventListener('click', function () {
    autoRetries = 0;
    mediaRecoveries = 0;
    start();
  });

  // Autoplay with sound is blocked until the viewer interacts; the page starts muted unless told otherwise and
  // keeps the controls, so a blocked play() just leaves a paused player, not an error.
  start();
})();
