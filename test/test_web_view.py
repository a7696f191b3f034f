"""web_view over real DDS and real HTTP: the overlay is subscribed only while a browser
streams it, a stalled client keeps memory bounded, max_clients + 1 gets a 503 page, no path
escapes the page's own files; and in a real browser (headless Chromium driven through
chromedriver's W3C WebDriver API), the page shows the live overlay and the top-1 the
classifier published."""
import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification, Detection2DArray, ObjectHypothesis

from edge_classifier import resources
from edge_classifier.postprocess import load_labels

from ros_helpers import LOCAL_HTTP, proc_status_kib, ros_process, stop, wait_for

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')


CHROMEDRIVER = shutil.which('chromedriver')
NO_BROWSER = ('no headless browser: chromium and chromedriver are not installed (`make '
              'browser` installs Debian\'s chromium and chromium-driver packages; see README, '
              '"Web view")')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_web_view(ns, **params):
    port = free_port()
    proc = ros_process('edge_classifier.web_view', {'port': port, **params},
                       ros_args=['-r', f'__ns:={ns}'])
    base = f'http://127.0.0.1:{port}'
    query = f'?token={params["token"]}' if params.get('token') else ''

    def up():
        try:
            return LOCAL_HTTP.open(base + '/state' + query, timeout=1).status == 200
        except OSError:
            return False

    assert wait_for(up, timeout=20), \
        f'web_view never served {base}: {stop(proc)[2] if proc.poll() is not None else ""}'
    return proc, base, port


def get(base, path, method='GET', headers=None, response_headers=False):
    """(status, body) of a raw request: the path is sent as written (no normalisation);
    headers: sent as given (a Host among them replaces the real one)."""
    host, port = base.split('//')[1].split(':')
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = headers or {}
    conn.putrequest(method, path, skip_accept_encoding=True, skip_host='Host' in headers)
    for key, value in headers.items():
        conn.putheader(key, value)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response_headers:
        return response.status, body, response.headers
    return response.status, body


class StreamReader:
    """A client of /stream: reads (or, with read=False, never reads) the MJPEG stream."""

    def __init__(self, base, source='', read=True):
        host, port = base.split('//')[1].split(':')
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        query = f'?source={source}' if source else ''
        self.sock.sendall(f'GET /stream{query} HTTP/1.1\r\nHost: {host}\r\n\r\n'.encode())
        self.head = b''
        if read:
            while b'\r\n\r\n' not in self.head:
                self.head += self.sock.recv(4096)

    @property
    def status(self):
        return int(self.head.split(b' ', 2)[1])

    def read_some(self, n=65536):
        return self.sock.recv(n)

    def close(self):
        self.sock.close()


def test_the_overlay_is_subscribed_only_while_a_browser_streams_it(ros):
    proc, base, _ = start_web_view('/wv1')
    pub = ros.node.create_publisher(Image, '/wv1/classification/overlay', 1)
    try:
        time.sleep(2.0)   # discovery has long matched whatever exists
        assert pub.get_subscription_count() == 0
        status, page = get(base, '/')
        assert status == 200 and b'edge_classifier' in page
        assert pub.get_subscription_count() == 0          # a page alone does not stream
        client = StreamReader(base)
        assert client.status == 200
        assert wait_for(lambda: pub.get_subscription_count() == 1, timeout=10)
        second = StreamReader(base)
        time.sleep(0.5)
        assert pub.get_subscription_count() == 1          # one subscription, any number of clients
        client.close()
        second.close()
        assert wait_for(lambda: pub.get_subscription_count() == 0, timeout=10)
    finally:
        code, _, err, _ = stop(proc)
    assert code == 0 and 'Traceback' not in err, err


def live_messages(base, actions, source='', headers=None):
    """A client of /live (the page's WebSocket), run to the end: `actions` is a list of
    'read' (one message, parsed to (meta, jpeg)), ('quiet', seconds) (None if no message
    came meanwhile, else the message) and 'next'; returns what the reads gave. headers:
    of the upgrade request (a cookie, a Host)."""
    import asyncio
    import struct

    import tornado.httpclient
    import tornado.websocket

    async def run():
        query = f'?source={source}' if source else ''
        request = tornado.httpclient.HTTPRequest(
            base.replace('http', 'ws') + '/live' + query, headers=headers or {})
        conn = await tornado.websocket.websocket_connect(request)
        got = []
        for action in actions:
            if action == 'next':
                await conn.write_message('next')
                continue
            timeout = action[1] if isinstance(action, tuple) else 20
            try:
                data = await asyncio.wait_for(conn.read_message(), timeout)
            except asyncio.TimeoutError:
                got.append(None)
                continue
            (n,) = struct.unpack('>I', data[:4])
            got.append((json.loads(data[4:4 + n]), data[4 + n:]))
        conn.close()
        return got
    return asyncio.run(run())


def test_live_sends_each_picture_with_its_own_result_and_waits_for_the_page(ros):
    """/live: a message holds the overlay JPEG and the result of that frame (same stamp),
    whatever order the two arrived in; the next goes only once the page said `next`."""
    import cv2
    import numpy as np
    proc, base, _ = start_web_view('/wv7')
    overlay = ros.node.create_publisher(Image, '/wv7/classification/overlay', 1)
    result = ros.node.create_publisher(Classification, '/wv7/classification', 10)
    stop_flag, stamp = [], [0]

    def publish():   # 20 Hz: results and overlays alternate which comes first
        while not stop_flag:
            stamp[0] += 1
            o = Image(height=48, width=64, encoding='bgr8', step=192)
            o.data = np.full((48, 64, 3), stamp[0] % 256, np.uint8).tobytes()
            r = Classification()
            r.results = [ObjectHypothesis(class_id=str(stamp[0] % 1000), score=0.5)]
            o.header.stamp.sec = r.header.stamp.sec = stamp[0]
            for pub, msg in [(overlay, o), (result, r)][::(-1 if stamp[0] % 2 else 1)]:
                pub.publish(msg)
            time.sleep(0.05)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        got = live_messages(base, ['read', ('quiet', 1.5), 'next', 'read', 'next', 'read'])
        first, quiet, second, third = got
        assert quiet is None, 'a message came before the page asked for the next'
        for meta, jpeg in (first, second, third):
            frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            stamp_of_picture = round(meta['stamp'])
            assert abs(int(frame.mean()) - stamp_of_picture % 256) <= 2   # the picture's own
            assert meta['result']['stamp'] == meta['stamp']
            assert meta['result']['results'][0]['class_id'] == str(stamp_of_picture % 1000)
        assert first[0]['stamp'] < second[0]['stamp'] < third[0]['stamp']
        # the newest frame after a pause: frames in between were skipped, never queued
        assert second[0]['stamp'] - first[0]['stamp'] >= 10
    finally:
        stop_flag.append(True)
        thread.join(5)
        code, _, err, _ = stop(proc)
    assert code == 0 and 'Traceback' not in err, err


def test_a_client_that_never_reads_keeps_memory_bounded(ros):
    """30 s of 30 Hz 640x480 overlays while one client never reads its stream and another
    reads: the server's resident memory stays within 25 MiB of where it was at 5 s."""
    proc, base, _ = start_web_view('/wv2')
    camera = ros_process('edge_classifier.tools.sample_camera', {
        'topic': '/wv2/classification/overlay', 'rate': 30.0, 'width': 640, 'height': 480})
    stalled = StreamReader(base, read=False)
    reader = StreamReader(base)
    got = [0]
    try:
        deadline = time.monotonic() + 30
        rss = []
        while time.monotonic() < deadline:
            got[0] += len(reader.read_some())
            if not rss and time.monotonic() > deadline - 25:
                rss.append(proc_status_kib(proc.pid, 'VmRSS'))
        rss.append(proc_status_kib(proc.pid, 'VmRSS'))
        assert got[0] > 30 * 20_000, 'the reading client got almost nothing'
        assert rss[1] - rss[0] < 25 * 1024, f'RSS grew from {rss[0]} to {rss[1]} KiB'
    finally:
        stalled.close()
        reader.close()
        stop(camera)
        code, _, err, _ = stop(proc)
    assert code == 0 and 'Traceback' not in err, err


def test_max_clients_plus_one_gets_503_and_no_path_escapes_the_page(ros):
    proc, base, _ = start_web_view('/wv3', max_clients=2)
    clients = []
    try:
        clients = [StreamReader(base), StreamReader(base)]
        assert [c.status for c in clients] == [200, 200]
        third = StreamReader(base)
        assert third.status == 503
        body = third.head
        while b'</html>' not in body:
            body += third.read_some()
        assert b'too many viewers' in body and b'max_clients' in body
        third.close()
        status, page = get(base, '/')
        assert status == 503 and b'max_clients' in page
        for path in ('/assets/../web_view.py', '/assets/..%2Fweb_view.py', '/../package.xml',
                     '/assets/../../package.xml', '/assets/%2e%2e/webapp.py', '/assets/',
                     '/assets/app.js/../../webapp.py', '/etc/passwd'):
            assert get(base, path)[0] == 404, path
        assert get(base, '/assets/app.js')[0] == 200
        assert get(base, '/state?source=/elsewhere')[0] == 404
        assert get(base, '/', method='POST')[0] == 405      # read-only
        for client in clients:
            client.close()
        assert wait_for(lambda: get(base, '/')[0] == 200, timeout=10)
    finally:
        for client in clients:
            client.close()
        code, _, err, _ = stop(proc)
    assert code == 0 and 'Traceback' not in err, err


def test_a_forged_host_gets_403_on_every_route_and_a_token_is_needed_once_set(ros):
    """DNS rebinding: a page of another site whose name now points at the robot sends its
    own name as Host: every route answers 403 (the WebSocket too). With a token (needed
    beyond the loopback; here set on it): none or a wrong one is 403, the right one in the
    URL serves and becomes a cookie that the page's own requests carry."""
    import tornado.httpclient
    proc, base, port = start_web_view('/wv9', token='s3cret-token')
    forged = {'Host': f'attacker.example:{port}'}
    try:
        for path in ('/', '/state', '/stream', '/assets/app.js', '/?token=s3cret-token'):
            status, body = get(base, path, headers=forged)
            assert status == 403 and b'allowed_hosts' in body, (path, status, body)
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            live_messages(base, [('quiet', 1)], headers=forged)
        assert refused.value.code == 403
        for path in ('/', '/state', '/assets/app.js', '/?token=wrong', '/state?token=s3cret'):
            status, body = get(base, path)
            assert status == 403 and b'needs its token' in body, (path, status, body)
        status, page, headers = get(base, '/?token=s3cret-token', response_headers=True)
        assert status == 200 and b'<canvas' in page
        cookie = headers['Set-Cookie'].split(';')[0]
        assert cookie == f'edge_classifier_token_{port}=s3cret-token'
        assert 'HttpOnly' in headers['Set-Cookie'] and 'SameSite=Strict' in headers['Set-Cookie']
        for path in ('/assets/app.js', '/state'):
            assert get(base, path, headers={'Cookie': cookie})[0] == 200, path
        assert get(base, '/state', headers={'Authorization': 'token s3cret-token'})[0] == 200
        assert live_messages(base, [('quiet', 1)], headers={'Cookie': cookie}) == [None]
        assert get(base, '/state', headers={'Host': f'localhost:{port}',
                                            'Cookie': cookie})[0] == 200
    finally:
        code, _, err, _ = stop(proc)
    assert code == 0 and 'Traceback' not in err, err
    assert 'refused 127.0.0.1: Host' in err              # said once (throttled), not per request
    assert 's3cret-token' not in err.replace('?token=s3cret-token (', '')  # only the URL line


def test_a_port_in_use_fails_at_startup_naming_it():
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = ros_process('edge_classifier.web_view', {'port': port})
        code, _, err, _ = stop(proc, sig=None, timeout=20)
    assert code == 2
    assert f'cannot serve on 127.0.0.1:{port}' in err and 'port' in err
    assert 'Traceback' not in err


class WebDriver:
    """chromedriver's W3C WebDriver HTTP API, as a test needs it (no client library)."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix='edge_classifier_chromium_')
        self.port = free_port()
        self.proc = subprocess.Popen([CHROMEDRIVER, f'--port={self.port}'],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(self._ready, timeout=20), 'chromedriver did not start'
        caps = {'browserName': 'chrome', 'pageLoadStrategy': 'eager', 'goog:chromeOptions': {
            'binary': CHROMIUM, 'args': ['--headless=new', '--no-sandbox', '--disable-gpu',
                                         '--window-size=1280,800', '--no-first-run',
                                         '--no-proxy-server',
                                         '--disable-background-networking',
                                         '--disable-component-update', '--disable-sync',
                                         '--disable-default-apps',
                                         f'--user-data-dir={self.profile}']}}
        self.session = self._call('POST', '/session',
                                  {'capabilities': {'alwaysMatch': caps}})['sessionId']

    def _ready(self):
        try:
            return self._call('GET', '/status')['ready']
        except OSError:
            return False

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f'http://127.0.0.1:{self.port}{path}', data=data,
                                         method=method,
                                         headers={'Content-Type': 'application/json'})
        with LOCAL_HTTP.open(request, timeout=60) as response:
            return json.loads(response.read())['value']

    def get(self, url):
        self._call('POST', f'/session/{self.session}/url', {'url': url})

    def js(self, script):
        return self._call('POST', f'/session/{self.session}/execute/sync',
                          {'script': script, 'args': []})

    def screenshot(self, path):
        Path(path).write_bytes(base64.b64decode(
            self._call('GET', f'/session/{self.session}/screenshot')))

    def quit(self):
        try:
            self._call('DELETE', f'/session/{self.session}')
        finally:
            self.proc.terminate()
            self.proc.wait(10)
            shutil.rmtree(self.profile, ignore_errors=True)


PAGE = """return {width: document.getElementById('overlay').dataset.stamp ?
                        document.getElementById('overlay').width : 0,
                 top1: (document.querySelector('#topk .name') || {}).textContent || '',
                 stamp: document.getElementById('stamp').textContent,
                 fps: document.getElementById('classified_fps').textContent};"""


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=NO_BROWSER)
def test_in_a_real_browser_the_page_shows_the_overlay_and_the_published_top1(ros, tmp_path):
    node = ros_process('edge_classifier.node', {'image_topics': ['image_raw']},
                       ros_args=['-r', '__ns:=/wvb'])
    camera = ros_process('edge_classifier.tools.sample_camera',
                         {'rate': 5.0, 'frame_id_from_file': True},
                         ros_args=['-r', '__ns:=/wvb'])
    results = ros.collect(Classification, '/wvb/classification')
    overlays = ros.collect(Image, '/wvb/classification/overlay')
    proc, base, _ = start_web_view('/wvb')
    names = load_labels(resources.models_dir() / 'imagenet1k_labels.txt', 1000)
    browser = None
    try:
        browser = WebDriver()
        browser.get(base + '/')
        shown = {}

        def live():
            shown.update(browser.js(PAGE))
            return shown['width'] > 0 and shown['top1'] and 'fps' in shown['fps']

        assert wait_for(live, timeout=60, interval=0.5), shown
        assert shown['width'] == 640          # the overlay's width (overlay_width)
        # the top-1 shown is the top-1 the classifier published for that frame (one this
        # process received too: its subscription may have matched after the first frames)
        match = []

        def published():
            shown.update(browser.js(PAGE))
            frame_id, _, stamp = shown['stamp'].split()
            match[:] = [m for m in results if m.header.frame_id == frame_id and
                        abs(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 -
                            float(stamp)) < 1e-3]
            return bool(match)

        assert wait_for(published, timeout=20, interval=0.2), \
            (shown, [(m.header.frame_id, m.header.stamp) for m in results[-5:]])
        assert shown['top1'] == names[int(match[0].results[0].class_id)]
        browser.screenshot(os.environ.get('EDGE_CLASSIFIER_SCREENSHOT',
                                          str(tmp_path / 'web_view.png')))
        picture_and_panel_agree(browser, results, overlays, names)
    finally:
        if browser is not None:
            browser.quit()
        for p in (camera, node):
            stop(p)
        code, _, err, _ = stop(proc)
    assert code == 0 and 'Traceback' not in err, err


def test_per_camera_outputs_join_the_selector(ros):
    """A classifier with per_source_output publishes <image>/classification and its overlay:
    the page offers them next to the merged output, and serves their state. Only the
    classifier it follows counts: another node's outputs (another robot's classifier,
    a viewer's subscription) never join."""
    import rclpy
    proc, base, _ = start_web_view('/wv5')
    # stand-ins in this process: the classifier the web view follows, and another node
    classifier = rclpy.create_node('edge_classifier', namespace='/wv5', context=ros.context)
    other = rclpy.create_node('edge_classifier', namespace='/wv5_other', context=ros.context)
    result = classifier.create_publisher(Classification, '/wv5/front/image_raw/classification',
                                         10)
    overlay = classifier.create_publisher(Image, '/wv5/front/image_raw/classification/overlay',
                                          1)
    other.create_publisher(Classification, '/wv5/rear/image_raw/classification', 10)
    other.create_publisher(Image, '/wv5/rear/image_raw/classification/overlay', 1)
    ros.executor.add_node(classifier)
    try:
        def listed():
            return json.loads(get(base, '/state')[1])['sources'] == [
                '/wv5/classification', '/wv5/front/image_raw/classification']

        assert wait_for(listed, timeout=15), get(base, '/state')
        msg = Classification()
        msg.header.frame_id = 'front'
        msg.results = [ObjectHypothesis(class_id='967', score=0.9)]

        def state():
            result.publish(msg)
            body = json.loads(get(base, '/state?source=/wv5/front/image_raw/classification')[1])
            return body['result'] and body['result']['results'][0]['class_id'] == '967'

        assert wait_for(state, timeout=15)
        assert overlay.get_subscription_count() == 0
    finally:
        code, _, err, _ = stop(proc)
        ros.executor.remove_node(classifier)
        classifier.destroy_node()
        other.destroy_node()
    assert code == 0 and 'Traceback' not in err, err


SAMPLE = """const shown = document.getElementById('overlay');
const small = document.createElement('canvas');
small.width = 32; small.height = 24;
const context = small.getContext('2d');
context.drawImage(shown, 0, 0, 32, 24);
return {pixels: Array.from(context.getImageData(0, 0, 32, 24).data),
        top1: (document.querySelector('#topk .name') || {}).textContent || ''};"""


def thumbnail(msg):
    import cv2
    import numpy as np
    bgr = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
    return cv2.resize(bgr, (32, 24), interpolation=cv2.INTER_AREA)[:, :, ::-1].astype(float)


def picture_and_panel_agree(browser, results, overlays, names, samples=30):
    """At 30 random moments, which photo the page's picture shows (by its pixels, against
    the overlays the classifier published) and the top-1 beside it: always that photo's
    top-1 (the picture and its names are shown together)."""
    import random

    import numpy as np
    assert wait_for(lambda: len({m.header.frame_id for m in list(overlays)}) >= 6 and
                    len({m.header.frame_id for m in list(results)}) >= 6,
                    timeout=30), 'the results and overlays of the six photos never came'
    top1 = {m.header.frame_id: names[int(m.results[0].class_id)] for m in list(results)}
    looks = {m.header.frame_id: thumbnail(m) for m in list(overlays)}
    assert len(set(top1[photo] for photo in looks)) >= 4   # the photos' results differ
    rng = random.Random(4)
    seen = []
    for _ in range(samples):
        time.sleep(rng.uniform(0.02, 0.4))
        shown = browser.js(SAMPLE)
        pixels = np.asarray(shown['pixels'], float).reshape(24, 32, 4)[:, :, :3]
        distance = sorted((np.abs(pixels - look).mean(), photo)
                          for photo, look in looks.items())
        (best, photo), (second, _) = distance[:2]
        assert best < 0.5 * second, f'the picture is none of the photos: {distance}'
        seen.append((photo, shown['top1'], top1[photo]))
    wrong = [s for s in seen if s[1] != s[2]]
    assert not wrong, f'{len(wrong)} of {samples}: (photo shown, panel top-1, its top-1): ' \
                      f'{wrong}'
    assert len({photo for photo, _, _ in seen}) >= 3   # the picture changed meanwhile


# ---- the two-stage pipeline: the page lists each box with its top-1 ----------------------
@pytest.fixture(scope='module')
def two_stage(ros):
    """The classifier on the stand-in detector's mosaics (4 tiles a frame, tile names as
    detection ids), and a web view, in /wv6."""
    ns = ['-r', '__ns:=/wv6']
    node = ros_process('edge_classifier.node', {'image_topics': ['image_raw'],
                                                'detection_topics': ['detections']},
                       ros_args=ns)
    camera = ros_process('edge_classifier.tools.sample_camera',
                         {'rate': 2.0, 'detections_topic': 'detections'}, ros_args=ns)
    published = ros.collect(Detection2DArray, '/wv6/classified_detections')
    proc, base, _ = start_web_view('/wv6')
    names = load_labels(resources.models_dir() / 'imagenet1k_labels.txt', 1000)

    def listed(frame_id, stamp):
        """What the page must list for a frame: '<id>: <top-1 name>' of each box, from the
        Detection2DArray published for it (None before it arrived here)."""
        for msg in published:
            if msg.header.frame_id == frame_id and abs(
                    msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 - stamp) < 1e-3:
                return [f'{d.id}: {names[int(d.results[0].hypothesis.class_id)]}'
                        for d in msg.detections]
        return None

    yield base, listed
    for p in (camera, node):
        stop(p)
    code, _, err, _ = stop(proc)
    assert code == 0 and 'Traceback' not in err, err


def test_two_stage_state_lists_each_box_with_its_published_top1(two_stage):
    base, listed = two_stage
    seen = {}

    def boxes():
        result = json.loads(get(base, '/state')[1])['result']
        if not result or 'boxes' not in result:
            return False
        seen.update(result)
        expected = listed(result['frame_id'], result['stamp'])
        return expected is not None and \
            [f'{b["id"]}: {b["name"]}' for b in result['boxes']] == expected

    assert wait_for(boxes, timeout=60, interval=0.3), seen
    assert seen['results'] == [] and seen['boxes_total'] == len(seen['boxes']) == 4
    assert all(0 < b['score'] <= 1 for b in seen['boxes'])


BOXES = """return {width: document.getElementById('overlay').dataset.stamp ?
                         document.getElementById('overlay').width : 0,
                  title: document.getElementById('results_title').textContent,
                  stamp: document.getElementById('stamp').textContent,
                  names: Array.from(document.querySelectorAll('#topk .name'),
                                    (e) => e.textContent)};"""


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=NO_BROWSER)
def test_in_a_real_browser_two_stage_boxes_are_listed_beside_the_overlay(two_stage):
    base, listed = two_stage
    browser = WebDriver()
    shown = {}
    try:
        browser.get(base + '/')

        def page():
            shown.update(browser.js(BOXES))
            if not (shown['width'] > 0 and shown['names']):
                return False
            frame_id, _, stamp = shown['stamp'].split()[:3]
            return shown['names'] == listed(frame_id, float(stamp))

        assert wait_for(page, timeout=60, interval=0.5), shown
        assert shown['title'] == 'boxes: top-1 each' and len(shown['names']) == 4
    finally:
        browser.quit()
