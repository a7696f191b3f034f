"""The web view's server (ROS-free, tornado): one page, a live MJPEG stream per source, the
state as JSON. web_view.py wires it to ROS topics.

    hub = Hub(sources=['/classification'], on_watch=subscribe, on_unwatch=unsubscribe)
    app = make_app(hub, max_clients=8)
    hub.frame(source, jpeg, stamp) # any thread: the newest overlay of a source
    hub.state(source, {...})       # any thread: a result (top-k, 'stamp', 'frame_id')
    hub.stats({...})               # any thread: the classifier's diagnostics

Routes: `/` the page, `/assets/<name>` the page's own files (a fixed list from
edge_classifier/web: anything else, `../` included, is 404), `/stream?source=S` the
overlay of S as multipart/x-mixed-replace JPEG, `/state?source=S` JSON. Read-only: every
route is GET, nothing changes the robot.

Costs and bounds: a source's overlay is subscribed only while a stream of it is open
(on_watch on the first, on_unwatch after the last). Each source keeps one JPEG, its newest;
a stream sends the newest frame when the browser has taken the previous one, so a slow or
stalled browser skips frames and never queues them: memory is bounded by one frame per
source and one in flight per client, whatever the clients do. While a source's overlay is
streamed, its state is the result of the overlay frame last delivered to a browser (same
stamp), so the names beside the picture are the picture's. At most `max_clients`
streams are open at once; the next page or stream gets a 503 page saying so.
"""
import asyncio
import collections
import json
import threading
import time
from pathlib import Path

import tornado.httpserver
import tornado.ioloop
import tornado.iostream
import tornado.netutil
import tornado.web

ASSETS_DIR = Path(__file__).resolve().parent / 'web'
ASSETS = {'index.html': 'text/html; charset=utf-8', 'app.js': 'text/javascript; charset=utf-8',
          'style.css': 'text/css; charset=utf-8'}
BOUNDARY = 'edge_classifier_frame'
BUSY_PAGE = ('<!doctype html><html><head><meta charset="utf-8"><title>edge_classifier: busy'
             '</title></head><body><h1>503: too many viewers</h1><p>This web view already '
             'serves {n} browser(s), its limit (parameter <code>max_clients</code>). Close '
             'another view, or restart web_view with a higher <code>max_clients</code>.</p>'
             '</body></html>')


class Hub:
    """What the pages show, shared between ROS callbacks (any thread) and the server (its
    IOLoop's thread). Frames are (seq, jpeg bytes), newest only."""

    def __init__(self, sources, on_watch=None, on_unwatch=None):
        self._lock = threading.Lock()
        self._sources = list(sources)
        self._frames = {}         # source -> (seq, jpeg, stamp)
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
            seq = self._frames.get(source, (0, None, None))[0] + 1
            self._frames[source] = (seq, jpeg, stamp)
        if self.loop is not None:
            self.loop.add_callback(self._wake)

    def state(self, source, state):
        with self._lock:
            recent = self._states.setdefault(source, collections.deque(maxlen=30))
            recent.append(dict(state, received=time.time()))

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
            seq = self._frames.get(source, (0, None, None))[0]
            stamp = self._delivered.get(source)
            recent = self._states.get(source) or [None]
            shown = [r for r in recent if r is not None and stamp is not None and
                     r.get('stamp') == stamp]
            return {'sources': list(self._sources), 'source': source,
                    'result': shown[-1] if shown else recent[-1],
                    'stats': dict(self._stats), 'clients': sum(self._watchers.values()),
                    'frames': seq}

    def latest(self, source):
        """(seq, jpeg, stamp) of the source's newest overlay; (0, None, None) before the
        first."""
        with self._lock:
            return self._frames.get(source, (0, None, None))

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


class _Base(tornado.web.RequestHandler):
    def initialize(self, hub, max_clients, default_source):
        self.hub = hub
        self.max_clients = max_clients
        self.default_source = default_source

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


def make_app(hub, max_clients=8, default_source=None):
    default_source = default_source or (hub.sources[0] if hub.sources else '')
    args = dict(hub=hub, max_clients=max_clients, default_source=default_source)
    return tornado.web.Application([
        (r'/', PageHandler, args),
        (r'/assets/(.*)', AssetHandler, args),
        (r'/state', StateHandler, args),
        (r'/stream', StreamHandler, args),
    ], compress_response=False)


class Server:
    """The app on its own thread and IOLoop: start() binds (OSError when it cannot: the
    port is taken, the address is not this machine's), stop() ends the thread."""

    def __init__(self, hub, host, port, max_clients=8, default_source=None):
        self.hub = hub
        self.host, self.port = host, port
        self.app = make_app(hub, max_clients, default_source)
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
