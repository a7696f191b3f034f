// The web view's page: the overlay stream of the chosen source, its top-k with score bars
// (two-stage: each box's top-1), the classifier's rates and latency, polled from /state
// (read-only: GET only).
'use strict';
const select = document.getElementById('source');
const img = document.getElementById('overlay');
const params = new URLSearchParams(location.search);
let source = params.get('source');

function streamOf(name) {
  return 'stream?source=' + encodeURIComponent(name);
}

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

function showResult(result) {
  const list = document.getElementById('topk');
  list.textContent = '';
  document.getElementById('results_title').textContent =
    result && result.boxes ? 'boxes: top-1 each' : 'top-k';
  if (!result) return;
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

async function poll() {
  try {
    const query = source ? '?source=' + encodeURIComponent(source) : '';
    const response = await fetch('state' + query, { cache: 'no-store' });
    if (!response.ok) throw new Error('HTTP ' + response.status);
    const state = await response.json();
    showSources(state.sources);
    if (!img.src.endsWith(streamOf(source))) img.src = streamOf(source);
    showResult(state.source === source ? state.result : null);
    showStats(state.stats);
    document.getElementById('status').textContent =
      state.result ? 'live' : 'waiting for results on ' + source;
  } catch (error) {
    document.getElementById('status').textContent = 'web_view unreachable (' + error.message + ')';
  }
}

select.addEventListener('change', () => {
  source = select.value;
  img.src = streamOf(source);
  poll();
});
poll();
setInterval(poll, 500);
