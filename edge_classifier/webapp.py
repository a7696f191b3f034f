"""The web view's server (ROS-free, tornado): one page, a live MJPEG stream per source, the
state as JSON. web_view.py wires it to ROS topics.

    hub = Hub(sources=['/classification'], on_watch=subscribe, on_unwatch=unsubscribe)
    app = make_app(hub, max_clients=8)
    hub.frame(source, jpeg, stamp) # any thread: the newest overlay of a source
    hub.state(source, {...})       # any thread: a result (top-k, 'stamp', 'frame_id')
    hub.stats({...})               # any thread: the classifier's diagnostics

Routes: `/` the page, `/assets/<name>` the page's own files (a fixed list from
edge_classifier/web: anything else, `../` included, is 404), `/live?source=S` (WebSocket)
the overlay of S together with its result, `/stream?source=S` the overlay of S as
multipart/x-mixed-replace JPEG (for tools that show an MJPEG URL), `/state?source=S` JSON
(rates, latency, the sources, the newest result). Read-only: nothing a client sends changes
the robot (the WebSocket takes one word from the page, `next`: "I have shown the last").

A picture and its result travel as one: the page gets, on `/live`, one message per frame
holding the overlay JPEG and the result of that same frame (paired here by the header
stamp: the overlay carries its image's header), and shows both in the same step, so the
names beside the picture are always the picture's.

Who is served (Access): a request whose `Host` header is not the bound address, a loopback
name, this machine's own name or an `allowed_hosts` entry gets 403, so a web site open in a
browser cannot rebind its own name to the robot's address and read the camera (DNS
rebinding); an IP address is always a valid Host (a rebinding needs a name). Bound beyond
the loopback, every route also needs the token (`?token=` in the URL web_view logs at
startup, as Jupyter does; then a cookie, so the page's own requests carry it; or an
`Authorization: token ...` header), compared in constant time.

Costs and bounds: a source's overlay is subscribed only while a stream of it is open
(on_watch on the first, on_unwatch after the last). Each source keeps one JPEG, its newest;
a stream sends the newest frame when the browser has taken the previous one, so a slow or
stalled browser skips frames and never queues them: memory is bounded by one frame per
source and one in flight per client, whatever the clients do. At most `max_clients`
streams are open at once; the next page or stream gets a 503 page saying so.
"""
import asyncio
import collections
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import struct
import threading
import time
from pathlib import Path

import tornado.httpserver
import tornado.ioloop
import tornado.iostream
import tornado.netutil
import tornado.web
import tornado.websocket

ASSETS_DIR = Path(__file__).resolve().parent / 'web'
ASSETS = {'index.html': 'text/html; charset=utf-8', 'app.js': 'text/javascript; charset=utf-8',
          'style.css': 'text/css; charset=utf-8'}
BOUNDARY = 'edge_classifier_frame'
BUSY_PAGE = ('<!doctype html><html><head><meta charset="utf-8"><title>edge_classifier: busy'
             '</title></head><body><h1>503: too many viewers</h1><p>This web view already '
             'serves {n} browser(s), its limit (parameter <code>max_clients</code>). Close '
             'another view, or restart web_view with a higher <code>max_clients</code>.</p>'
             '</body></html>')
# How long a frame waits for its result (it normally comes first: the classifier publishes
# the result, then draws the overlay) before it is shown with none.
PAIR_WAIT = 1.0


def is_loopback(host):
    """True for a name or address of this machine's loopback only."""
    host = host.strip('[]').lower()
    if host == 'localhost' or host.endswith('.localhost'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host):
    return host in ('', '0.0.0.0', '::', '[::]')


class Access:
    """Which requests are served: the Host check (DNS rebinding) and, bound beyond the
    loopback, the token. Pure: `refusal(host_header, token)` is None (serve) or the text of
    the 403.

    bind: the address the server binds; allowed_hosts: further names a browser may use
    (a reverse proxy's, a DNS name of the robot; '*' = any); token: '' = none on the
    loopback, a random one beyond it (`Access.token` says which); on_refused(text): told of
    each refused request."""

    def __init__(self, bind, allowed_hosts=(), token='', on_refused=None):
        self.on_refused = on_refused or (lambda text: None)
        self.bind = bind.strip('[]').lower()
        self.allowed = {h.strip().rstrip('.').lower() for h in allowed_hosts if h.strip()}
        names = {socket.gethostname().lower()} - {''}
        self.own_names = names | {n + '.local' for n in names if '.' not in n}
        self.token = token or (None if is_loopback(bind) else secrets.token_urlsafe(18))

    @staticmethod
    def host_name(header):
        """The name of a Host header, without its port (IPv6 addresses without [])."""
        header = (header or '').strip().lower()
        if header.startswith('['):
            return header[1:].split(']', 1)[0]
        return header.rsplit(':', 1)[0] if header.count(':') == 1 else header

    def host_allowed(self, header):
        name = self.host_name(header).rstrip('.')
        if not name:
            return False
        if '*' in self.allowed or name in self.allowed or is_loopback(name):
            return True
        if name == self.bind:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:   # a name: only this machine's own (the bound one, checked above)
            return not is_loopback(self.bind) and name in self.own_names
        # An address cannot be rebound; it is this machine's if the request came here by it
        # (bound to all of them), else it must be the bound one.
        return is_wildcard(self.bind)

    def token_ok(self, given):
        return self.token is None or (
            given is not None and hmac.compare_digest(given.encode(), self.token.encode()))

    def refusal(self, host_header, token):
        if not self.host_allowed(host_header):
            return (f'403: Host {self.host_name(host_header)!r} is not a name of this web '
                    f'view. Open it by the address it is bound to ({self.bind or "any"}), a '
                    f'loopback name or this machine\'s name, or add the name to the web_view '
                    f'parameter allowed_hosts (this check stops DNS rebinding).\n')
        if not self.token_ok(token):
            why = '' if is_loopback(self.bind) else ' (it is bound beyond the loopback)'
            return (f'403: this web view needs its token{why}. '
                    'Open the URL web_view logged at startup (http://<host>:<port>/?token='
                    '...), or set the token yourself: -p token:=<secret>.\n')
        return None


class Hub:
    """What the pages show, shared between ROS callbacks (any thread) and the server (its
    IOLoop's thread). Frames are kept newest only, each with the result of the same frame
    (same stamp) once it is known."""

    def __init__(self, sources, on_watch=None, on_unwatch=None):
        self._lock = threading.Lock()
        self._sources = list(sources)
        self._frames = {}         # source -> _Frame, the newest
        self._delivered = {}      # source -> stamp of the frame a stream last delivered
        self._states = {}         # source -> the recent results (dicts), newest last
        self._stats = {}
        self._watchers = {}       # source -> open streams
        self.on_watch = on_watch or (lambda source: None)
        self.on_unwatch = on_unwatch or (lambda source: None)
        self.loop = None          # the server's IOLoop, set by make_app's caller
        self._waiters = set()     # asyncio futures of streams waiting for a frame

    # ---- from ROS (any thread) ------------------------------------------------------------
    def set_sources(self, sources):
        with self._lock:
            self._sources = list(dict.fromkeys(sources))

    def frame(self, source, jpeg, stamp=None):
        with self._lock:
            old = self._frames.get(source)
            result = next((r for r in reversed(self._states.get(source, ()))
                           if stamp is not None and r.get('stamp') == stamp), None)
            self._frames[source] = _Frame((old.seq if old else 0) + 1, jpeg, stamp, result,
                                          time.monotonic())
        self._notify()

    def state(self, source, state):
        with self._lock:
            recent = self._states.setdefault(source, collections.deque(maxlen=30))
            state = dict(state, received=time.time())
            recent.append(state)
            frame = self._frames.get(source)
            paired = frame is not None and frame.result is None and \
                frame.stamp is not None and frame.stamp == state.get('stamp')
            if paired:
                frame.result = state
        if paired:
            self._notify()

    def _notify(self):
        if self.loop is not None:
            self.loop.add_callback(self._wake)

    def stats(self, stats):
        with self._lock:
            self._stats = dict(stats)

    # ---- for the server (its thread) --------------------------------------------------------
    @property
    def sources(self):
        with self._lock:
            return list(self._sources)

    def clients(self):
        with self._lock:
            return sum(self._watchers.values())

    def snapshot(self, source):
        with self._lock:
            frame = self._frames.get(source)
            recent = self._states.get(source) or [None]
            return {'sources': list(self._sources), 'source': source, 'result': recent[-1],
                    'stats': dict(self._stats), 'clients': sum(self._watchers.values()),
                    'frames': frame.seq if frame else 0,
                    'delivered': self._delivered.get(source)}

    def latest(self, source):
        """(seq, jpeg, stamp) of the source's newest overlay; (0, None, None) before the
        first."""
        with self._lock:
            frame = self._frames.get(source)
            return (frame.seq, frame.jpeg, frame.stamp) if frame else (0, None, None)

    def paired(self, source):
        """(seq, jpeg, meta) of the source's newest overlay with its own result: meta is
        {'stamp', 'result'}; None while the result may still come (PAIR_WAIT), after
        which the frame is shown with result None. (0, None, None) before the first."""
        with self._lock:
            frame = self._frames.get(source)
            if frame is None:
                return 0, None, None
            if frame.result is None and time.monotonic() - frame.arrived < PAIR_WAIT:
                return frame.seq, frame.jpeg, None
            return frame.seq, frame.jpeg, {'stamp': frame.stamp, 'result': frame.result}

    def delivered(self, source, stamp):
        with self._lock:
            self._delivered[source] = stamp

    def watch(self, source):
        with self._lock:
            first = not self._watchers.get(source)
            self._watchers[source] = self._watchers.get(source, 0) + 1
        if first:
            self.on_watch(source)

    def unwatch(self, source):
        with self._lock:
            self._watchers[source] -= 1
            last = not self._watchers[source]
            if last:
                del self._watchers[source]
                self._frames.pop(source, None)   # nobody looks: no frame kept
                self._delivered.pop(source, None)
        if last:
            self.on_unwatch(source)

    async def wait_frame(self, timeout):
        """Until some source has a new frame, or `timeout` seconds."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._waiters.discard(future)

    def _wake(self):
        for future in list(self._waiters):
            if not future.done():
                future.set_result(None)


class _Frame:
    __slots__ = ('seq', 'jpeg', 'stamp', 'result', 'arrived')

    def __init__(self, seq, jpeg, stamp, result, arrived):
        self.seq, self.jpeg, self.stamp = seq, jpeg, stamp
        self.result, self.arrived = result, arrived


class _Serving:
    """What every route shares (plain HTTP and the WebSocket)."""

    def initialize(self, hub, max_clients, default_source, access):
        self.hub = hub
        self.max_clients = max_clients
        self.default_source = default_source
        self.access = access

    def prepare(self):
        """Every route: the Host check and the token (Access); a right token in the URL
        becomes a cookie, so that the page's own requests (assets, /state, /live) carry it."""
        access = self.access
        given = self.get_query_argument('token', None)
        from_url = given is not None
        if given is None:
            auth = self.request.headers.get('Authorization', '')
            given = auth[6:].strip() if auth.lower().startswith('token ') else None
        if given is None:
            given = self.get_cookie(self.cookie_name())
        refusal = access.refusal(self.request.host, given)
        if refusal is not None:
            self.set_status(403)
            self.set_header('Content-Type', 'text/plain; charset=utf-8')
            self.finish(refusal)
            access.on_refused(f'{self.request.remote_ip}: {refusal.split(". ")[0][5:]}')
            return
        if from_url and access.token is not None:
            self.set_cookie(self.cookie_name(), given, httponly=True, samesite='Strict')

    def cookie_name(self):
        """Per port: browsers send a host's cookies to all its ports."""
        port = self.request.host.rsplit(':', 1)[-1] if ':' in self.request.host else '80'
        return f'edge_classifier_token_{port if port.isdigit() else "80"}'

    def set_default_headers(self):
        self.set_header('Cache-Control', 'no-store')
        self.set_header('X-Content-Type-Options', 'nosniff')

    def source(self):
        source = self.get_argument('source', self.default_source)
        if source not in self.hub.sources:
            raise tornado.web.HTTPError(404, f'no source {source}')
        return source

    def busy(self):
        """True (and a 503 page sent) when max_clients streams are open."""
        if self.hub.clients() < self.max_clients:
            return False
        self.set_status(503)
        self.set_header('Content-Type', 'text/html; charset=utf-8')
        self.set_header('Retry-After', '10')
        self.finish(BUSY_PAGE.format(n=self.max_clients))
        return True

    def write_error(self, status_code, **kwargs):
        self.set_header('Content-Type', 'text/plain; charset=utf-8')
        self.finish(f'{status_code}: {self._reason}\n')


class _Base(_Serving, tornado.web.RequestHandler):
    pass


class PageHandler(_Base):
    def get(self):
        if not self.busy():
            self._asset('index.html')

    def _asset(self, name):
        self.set_header('Content-Type', ASSETS[name])
        self.finish((ASSETS_DIR / name).read_bytes())


class AssetHandler(PageHandler):
    def get(self, name):
        if name not in ASSETS:   # only the page's own files: no path is ever resolved
            raise tornado.web.HTTPError(404)
        self._asset(name)


class StateHandler(_Base):
    def get(self):
        self.set_header('Content-Type', 'application/json')
        self.finish(json.dumps(self.hub.snapshot(self.source())))


class StreamHandler(_Base):
    """The overlay of one source as an MJPEG stream: the newest frame each time the browser
    has taken the last one (never a queue)."""

    closed = False

    def on_connection_close(self):
        self.closed = True

    async def get(self):
        source = self.source()
        if self.busy():
            return
        self.hub.watch(source)
        try:
            self.set_header('Content-Type', f'multipart/x-mixed-replace; boundary={BOUNDARY}')
            self.write(f'--{BOUNDARY}\r\n'.encode())
            await self.flush()   # the headers now: the browser knows the stream is open
            sent = 0
            while not self.closed:
                seq, jpeg, stamp = self.hub.latest(source)
                if jpeg is None or seq == sent:
                    await self.hub.wait_frame(1.0)
                    continue
                sent = seq
                # each part ends with the next boundary: a browser shows a part once it
                # sees the boundary after it (else always one frame late)
                self.write(f'Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n'
                           .encode())
                self.write(jpeg)
                self.write(f'\r\n--{BOUNDARY}\r\n'.encode())
                await self.flush()   # returns once the browser took it: nothing queues
                self.hub.delivered(source, stamp)
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            self.hub.unwatch(source)


class LiveHandler(_Serving, tornado.websocket.WebSocketHandler):
    """The page's live view of one source (WebSocket): one binary message per frame, a
    4-byte big-endian length, that many bytes of JSON ({'stamp', 'result'}: the result of
    this very frame), then the overlay JPEG. The next frame goes once the page has said
    `next` (it has shown this one): the newest then, never a queue. Cross-origin
    connections are refused (tornado's origin check)."""

    watching = False
    shown = None
    watched = None

    async def get(self, *args, **kwargs):
        self.watched = self.source()
        if self.busy():
            return
        await super().get(*args, **kwargs)

    def open(self, *args, **kwargs):
        self.hub.watch(self.watched)
        self.watching = True
        self.shown = asyncio.Event()
        self.shown.set()
        asyncio.ensure_future(self._pump())

    def on_message(self, message):
        if message == 'next':
            self.shown.set()

    def on_close(self):
        if self.watching:
            self.watching = False
            self.hub.unwatch(self.watched)
        if self.shown is not None:
            self.shown.set()

    async def _pump(self):
        sent = 0
        while self.watching:
            await self.shown.wait()
            seq, jpeg, meta = self.hub.paired(self.watched)
            if not self.watching:
                return
            if jpeg is None or seq == sent or meta is None:
                await self.hub.wait_frame(0.1 if meta is None and jpeg is not None else 1.0)
                continue
            sent = seq
            self.shown.clear()
            head = json.dumps(meta).encode()
            try:
                await self.write_message(struct.pack('>I', len(head)) + head + jpeg,
                                         binary=True)
            except tornado.websocket.WebSocketClosedError:
                return
            self.hub.delivered(self.watched, meta['stamp'])


def make_app(hub, max_clients=8, default_source=None, access=None):
    """The routes; access: who is served (default: the loopback's rules, no token)."""
    default_source = default_source or (hub.sources[0] if hub.sources else '')
    args = dict(hub=hub, max_clients=max_clients, default_source=default_source,
                access=access or Access('127.0.0.1'))
    return tornado.web.Application([
        (r'/', PageHandler, args),
        (r'/assets/(.*)', AssetHandler, args),
        (r'/state', StateHandler, args),
        (r'/stream', StreamHandler, args),
        (r'/live', LiveHandler, args),
    ], compress_response=False, log_function=_log_request)


def _log_request(handler):
    """Server errors only (tornado logs every 4xx, with its URL: the token too, and a line
    per refused request; web_view logs refusals itself, throttled)."""
    if handler.get_status() >= 500:
        logging.getLogger('tornado.access').error(
            '%d %s %s', handler.get_status(), handler.request.method, handler.request.path)


class Server:
    """The app on its own thread and IOLoop: start() binds (OSError when it cannot: the
    port is taken, the address is not this machine's), stop() ends the thread."""

    def __init__(self, hub, host, port, max_clients=8, default_source=None,
                 allowed_hosts=(), token='', on_refused=None):
        self.hub = hub
        self.host, self.port = host, port
        self.access = Access(host, allowed_hosts, token, on_refused)
        self.app = make_app(hub, max_clients, default_source, self.access)
        self._thread = None
        self._started = threading.Event()
        self._server = None

    def start(self, timeout=10.0):
        sockets = tornado.netutil.bind_sockets(self.port, self.host)
        self.port = sockets[0].getsockname()[1]   # port 0: the one the OS gave
        self._thread = threading.Thread(target=self._run, args=(sockets,),
                                        name='edge_classifier-web', daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise OSError(f'the web server did not start within {timeout:g} s')
        return self

    def _run(self, sockets):
        asyncio.set_event_loop(asyncio.new_event_loop())
        loop = tornado.ioloop.IOLoop.current()
        self._server = tornado.httpserver.HTTPServer(self.app)
        self._server.add_sockets(sockets)
        self.hub.loop = loop
        self._started.set()
        loop.start()
        loop.close(all_fds=True)

    def stop(self, timeout=5.0):
        loop = self.hub.loop
        if loop is None or self._thread is None:
            return

        def shut():
            self._server.stop()
            loop.stop()
        loop.add_callback(shut)
        self._thread.join(timeout)
        self.hub.loop = None
