// The web view's page: the overlay of the chosen source with the results of that same
// frame (two-stage: each box's top-1), and the classifier's rates and latency.
// A picture and its result come as one WebSocket message (/live) and are shown in the same
// step: the names beside the picture are always the picture's. /state is polled for the
// sources, rates and latency (and the newest result while no picture comes). Read-only: the
// page only ever says "next" (it has shown a frame).
'use strict';
const select = document.getElementById('source');
const canvas = document.getElementById('overlay');
const context = canvas.getContext('2d');
const params = new URLSearchParams(location.search);
let source = params.get('source');
let socket = null;
let pictureAt = 0;            // when the last picture was shown (performance.now())
const NO_PICTURE_MS = 3000;   // after this long without one, /state's result is shown

function showSources(sources) {
  const have = Array.from(select.options).map((o) => o.value).join('\n');
  if (have === sources.join('\n')) return;
  select.textContent = '';
  for (const name of sources) {
    const option = document.createElement('option');
    option.value = option.textContent = name;
    select.appendChild(option);
  }
  if (!source || !sources.includes(source)) source = sources[0];
  select.value = source;
  document.getElementById('sources').hidden = sources.length < 2;
}

// A two-stage result lists its boxes, "<detection id>: <top-1>", in the detector's order.
function entries(result) {
  if (!result.boxes) return result.results;
  return result.boxes.map((b) => ({
    name: b.id + ': ' + (b.name === null ? 'not classified (skipped)' : b.name),
    score: b.score === null ? 0 : b.score,
  }));
}

function showResult(result, stamp) {
  const list = document.getElementById('topk');
  list.textContent = '';
  document.getElementById('results_title').textContent =
    result && result.boxes ? 'boxes: top-1 each' : 'top-k';
  if (!result) {
    document.getElementById('stamp').textContent =
      stamp === undefined ? '' : 'stamp ' + stamp.toFixed(3) + ': no result for this frame';
    return;
  }
  for (const h of entries(result)) {
    const item = document.createElement('li');
    item.className = 'hypothesis';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = h.name;
    const score = document.createElement('span');
    score.className = 'score';
    score.textContent = h.score.toFixed(3);
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.style.width = Math.max(1, Math.round(h.score * 100)) + '%';
    item.append(name, score, bar);
    list.appendChild(item);
  }
  const more = result.boxes && result.boxes_total > result.boxes.length
    ? ' (' + result.boxes.length + ' of ' + result.boxes_total + ' boxes listed)' : '';
  document.getElementById('stamp').textContent =
    (result.frame_id || '') + ' stamp ' + result.stamp.toFixed(3) + more;
}

function showStats(stats) {
  const put = (id, value) => { document.getElementById(id).textContent = value; };
  put('input_fps', stats.input_fps !== undefined ? stats.input_fps + ' fps' : '–');
  put('classified_fps', stats.classified_fps !== undefined ? stats.classified_fps + ' fps' : '–');
  put('p50', stats.end_to_end_ms_p50 !== undefined ? stats.end_to_end_ms_p50 + ' ms' : '–');
  put('p99', stats.end_to_end_ms_p99 !== undefined ? stats.end_to_end_ms_p99 + ' ms' : '–');
  put('model', stats.model || '–');
}

// One message: 4-byte big-endian length, that much JSON {stamp, result}, the JPEG.
async function onFrame(ws, data) {
  const length = new DataView(data).getUint32(0);
  const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(data, 4, length)));
  let bitmap = null;
  try {
    bitmap = await createImageBitmap(new Blob([new Uint8Array(data, 4 + length)],
      { type: 'image/jpeg' }));
  } catch (error) {
    bitmap = null;   // a frame the browser cannot decode: skipped
  }
  if (ws !== socket) return;   // the source changed meanwhile
  if (bitmap) {
    // picture and names in one step: the browser paints them together
    if (canvas.width !== bitmap.width) canvas.width = bitmap.width;
    if (canvas.height !== bitmap.height) canvas.height = bitmap.height;
    context.drawImage(bitmap, 0, 0);
    bitmap.close();
    canvas.dataset.stamp = meta.stamp;
    showResult(meta.result, meta.stamp);
    pictureAt = performance.now();
    document.getElementById('status').textContent = 'live';
  }
  ws.send('next');
}

function connect() {
  if (socket) socket.close();
  const base = location.href.replace(/[?#].*$/, '').replace(/[^/]*$/, '');
  const ws = new WebSocket(base.replace(/^http/, 'ws') + 'live?source=' +
    encodeURIComponent(source));
  ws.binaryType = 'arraybuffer';
  ws.onmessage = (event) => onFrame(ws, event.data);
  ws.onclose = () => {
    if (ws === socket) setTimeout(() => { if (ws === socket) connect(); }, 1000);
  };
  socket = ws;
}

async function poll() {
  try {
    const query = source ? '?source=' + encodeURIComponent(source) : '';
    const response = await fetch('state' + query, { cache: 'no-store' });
    if (!response.ok) throw new Error('HTTP ' + response.status);
    const state = await response.json();
    showSources(state.sources);
    if (!socket) connect();
    showStats(state.stats);
    if (performance.now() - pictureAt > NO_PICTURE_MS) {
      showResult(state.source === source ? state.result : null);
      document.getElementById('status').textContent = state.result
        ? 'results, no picture (is the classifier drawing classification/overlay?)'
        : 'waiting for results on ' + source;
    }
  } catch (error) {
    document.getElementById('status').textContent = 'web_view unreachable (' + error.message + ')';
  }
}

select.addEventListener('change', () => {
  source = select.value;
  pictureAt = 0;
  connect();
  poll();
});
poll();
setInterval(poll, 500);
