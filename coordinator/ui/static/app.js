// Strata's web UI: one page, hand-written, no framework and no build step.
// It reads the HTTP API and follows the event stream to stay current. All
// text from the API goes into the page as text nodes (never as HTML).

const TOKEN_KEY = 'strata.token';
const TOPICS = ['Job', 'Allocation', 'Deployment', 'Node'];

const session = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  lastIndex: 0,        // the last event stream index seen
  stream: null,        // the event stream's AbortController
  page: null,          // the page shown: {wants(events), refresh(), dispose()}
  refreshTimer: 0,
};

// ---- the token ----------------------------------------------------------

// takeTokenFromFragment reads #token=… (alone, or beside a route:
// #/jobs&token=…) once: the token goes to session storage and leaves the
// address bar and the history entry.
function takeTokenFromFragment() {
  const parts = location.hash.replace(/^#/, '').split('&');
  let token = null;
  const keep = [];
  for (const p of parts) {
    if (p.startsWith('token=')) {
      token = decodeURIComponent(p.slice('token='.length));
    } else if (p) {
      keep.push(p);
    }
  }
  if (token === null) return;
  setToken(token);
  const route = keep.length ? '#' + keep.join('&') : '#/jobs';
  history.replaceState(null, '', location.pathname + location.search + route);
}

function setToken(token) {
  session.token = token;
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  } else {
    sessionStorage.removeItem(TOKEN_KEY);
  }
  document.getElementById('forget-token').hidden = !token;
}

// ---- the API ------------------------------------------------------------

class AuthError extends Error {}

function headers() {
  return session.token ? { 'X-Strata-Token': session.token } : {};
}

async function api(path, signal) {
  const resp = await fetch(path, { headers: headers(), signal, cache: 'no-store' });
  let body = null;
  const text = await resp.text();
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  const message = body && body.error; // the API's errors: {"error": "…"}
  if (resp.status === 403) {
    throw new AuthError(message || 'permission denied');
  }
  if (!resp.ok) {
    throw new Error(`${path}: ${resp.status} ${message || text}`);
  }
  return body;
}

// ---- building the page ---------------------------------------------------

// h makes an element: h('a', {href: '#/x'}, 'text', child, …). Strings are
// text nodes; null and false children are skipped; arrays are flattened.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// table is an accessible table: a caption, column headers, and for each
// row its cells (the first a row header).
function table(caption, columns, rows, empty) {
  if (!rows.length) {
    return h('p', { class: 'empty' }, empty || `No ${caption.toLowerCase()}.`);
  }
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': caption, tabindex: 0 },
    h('table', {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((cells) => h('tr', {},
        cells.map((c, i) => (i === 0 ? h('th', { scope: 'row' }, c) : h('td', {}, c))))))));
}

function dl(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function badge(text, kind) {
  return h('span', { class: `badge ${kind || text}` }, text || '—');
}

function short(id) {
  return id ? id.slice(-8) : '';
}

function when(ns) {
  if (!ns) return '—';
  const d = new Date(ns / 1e6);
  return h('time', { datetime: d.toISOString() }, d.toLocaleString());
}

function link(href, text) {
  return h('a', { href }, text);
}

const jobLink = (id) => link(`#/job/${encodeURIComponent(id)}`, id);
const allocLink = (id) => link(`#/allocation/${encodeURIComponent(id)}`, short(id));
const nodeLink = (id, name) => link(`#/node/${encodeURIComponent(id)}`, name || short(id));

function progress(healthy, total, label) {
  return h('span', { class: 'progress' },
    h('progress', { value: healthy, max: Math.max(total, 1), 'aria-label': label }),
    ` ${healthy}/${total} healthy`);
}

function deploymentProgress(d) {
  let healthy = 0;
  let total = 0;
  for (const g of Object.values(d.TaskGroups || {})) {
    healthy += g.HealthyAllocs;
    total += g.DesiredTotal;
  }
  return progress(healthy, total, `Deployment ${short(d.ID)} progress`);
}

function isLive(a) {
  return a.DesiredStatus === 'run' && !['complete', 'failed', 'lost'].includes(a.ClientStatus);
}

// ---- pages ---------------------------------------------------------------

// Each page is a function of its route's parameters returning
// {title, nav, load(signal) -> Node, wants(events), keep?: Node}: load builds
// the page's body; it runs again (debounced) when an event the page wants
// arrives. keep is a part of the page that stays across reloads (logs).

const pages = {
  jobs: () => ({
    title: 'Jobs',
    nav: 'jobs',
    wants: (evs) => evs.some((e) => e.Topic !== 'Node'),
    async load(signal) {
      const [jobs, deps] = await Promise.all([api('/v1/jobs', signal), api('/v1/deployments', signal)]);
      const latest = {};
      for (const d of deps || []) {
        if (!latest[d.JobID] || d.CreateIndex > latest[d.JobID].CreateIndex) latest[d.JobID] = d;
      }
      return h('section', { 'aria-labelledby': 'jobs-h' },
        h('h1', { id: 'jobs-h' }, 'Jobs'),
        table('Jobs', ['Job', 'Status', 'Version', 'Allocations', 'Latest deployment'],
          jobs.map((j) => {
            const d = latest[j.ID];
            return [jobLink(j.ID), badge(j.Status), `v${j.Version}`, summary(j.Summary),
              d ? [badge(d.Status), ' ', deploymentProgress(d)] : '—'];
          }), 'No jobs yet: run one with `strata run job.hcl`.'));
    },
  }),

  job: (id) => ({
    title: `Job ${id}`,
    nav: 'jobs',
    wants: (evs) => evs.some((e) => eventJob(e) === id),
    async load(signal) {
      const enc = encodeURIComponent(id);
      const [rec, versions, deps, allocs] = await Promise.all([
        api(`/v1/job/${enc}`, signal), api(`/v1/job/${enc}/versions`, signal),
        api(`/v1/job/${enc}/deployments`, signal), api(`/v1/job/${enc}/allocations`, signal)]);
      const groups = rec.Job.Groups || [];
      const sorted = [...allocs.Allocations].sort((a, b) => b.CreateIndex - a.CreateIndex);
      return h('div', {},
        h('h1', {}, `Job ${id}`),
        dl([
          ['Status', badge(rec.Stopped ? 'dead' : 'running')],
          ['Version', `v${rec.Version}`],
          ['Type', rec.Job.Type],
          ['Groups', groups.map((g) => `${g.Name} × ${g.Count}`).join(', ')],
          ['Submitted', when(rec.SubmitTime)],
        ]),
        h('section', { 'aria-labelledby': 'deps-h' },
          h('h2', { id: 'deps-h' }, 'Deployments'),
          table('Deployments', ['Deployment', 'Version', 'Status', 'Progress', 'Description'],
            (deps || []).map((d) => [short(d.ID), `v${d.JobVersion}`, badge(d.Status), deploymentProgress(d), d.StatusDescription || '']))),
        h('section', { 'aria-labelledby': 'allocs-h' },
          h('h2', { id: 'allocs-h' }, 'Allocations'),
          table('Allocations', ['Allocation', 'Group', 'Node', 'Version', 'Desired', 'Status', 'Health'],
            sorted.map((a) => [allocLink(a.ID), a.Group, nodeLink(a.NodeID, a.NodeName), `v${a.JobVersion}`,
              a.DesiredStatus, badge(a.ClientStatus), a.DeploymentHealth || '—']))),
        h('section', { 'aria-labelledby': 'versions-h' },
          h('h2', { id: 'versions-h' }, 'Versions'),
          table('Versions', ['Version', 'Stable', 'Submitted', 'Groups'],
            versions.Versions.map((v) => [`v${v.Version}`, v.Stable ? 'yes' : 'no', when(v.SubmitTime),
              (v.Job.Groups || []).map((g) => `${g.Name} × ${g.Count}`).join(', ')]))));
    },
  }),

  allocation: (id) => {
    const logs = logViewer(id);
    return {
      title: `Allocation ${short(id)}`,
      nav: 'jobs',
      keep: logs.node,
      dispose: logs.stop,
      wants: (evs) => evs.some((e) => e.Topic === 'Allocation' && e.Key === id),
      async load(signal) {
        const a = await api(`/v1/allocation/${encodeURIComponent(id)}`, signal);
        const rec = await api(`/v1/job/${encodeURIComponent(a.JobID)}`, signal).catch(() => null);
        const group = rec && (rec.Job.Groups || []).find((g) => g.Name === a.Group);
        const tasks = new Set(Object.keys(a.TaskStates || {}));
        for (const t of (group && group.Tasks) || []) tasks.add(t.Name);
        logs.setTasks([...tasks].sort());
        return h('div', {},
          h('h1', {}, `Allocation ${short(id)}`),
          dl([
            ['ID', h('code', {}, a.ID)],
            ['Job', [jobLink(a.JobID), ` v${a.JobVersion}`]],
            ['Group', a.Group],
            ['Node', nodeLink(a.NodeID, a.NodeName)],
            ['Desired', a.DesiredStatus + (a.DesiredDescription ? ` (${a.DesiredDescription})` : '')],
            ['Status', [badge(a.ClientStatus), a.ClientDescription ? ` ${a.ClientDescription}` : '']],
            a.DeploymentID && ['Deployment', `${short(a.DeploymentID)}, ${a.DeploymentHealth || 'health pending'}`],
          ]),
          (a.Endpoints || []).length ? h('section', { 'aria-labelledby': 'eps-h' },
            h('h2', { id: 'eps-h' }, 'Endpoints'),
            table('Endpoints', ['Service', 'Address', 'Health', 'Tags'],
              a.Endpoints.map((e) => [e.Service, `${e.Address}:${e.Port}`, e.Healthy ? badge('passing') : badge('critical'), (e.Tags || []).join(', ')]))) : null,
          [...tasks].sort().map((name) => taskSection(name, (a.TaskStates || {})[name])));
      },
    };
  },

  nodes: () => ({
    title: 'Nodes',
    nav: 'nodes',
    wants: (evs) => evs.some((e) => e.Topic === 'Node' || e.Topic === 'Allocation'),
    async load(signal) {
      const [nodes, allocs] = await Promise.all([api('/v1/nodes', signal), api('/v1/allocations', signal).catch(() => [])]);
      const count = {};
      for (const a of allocs) if (isLive(a)) count[a.NodeID] = (count[a.NodeID] || 0) + 1;
      return h('section', { 'aria-labelledby': 'nodes-h' },
        h('h1', { id: 'nodes-h' }, 'Nodes'),
        table('Nodes', ['Node', 'Datacenter', 'Address', 'Status', 'Eligibility', 'Drivers', 'Allocations'],
          nodes.map((n) => [nodeLink(n.ID, n.Name), n.Datacenter, n.Address, badge(n.Status),
            n.Drain ? 'draining' : (n.Eligible ? 'eligible' : 'ineligible'), drivers(n.Drivers), String(count[n.ID] || 0)]),
          'No nodes: start an agent with `strata agent`.'));
    },
  }),

  node: (id) => ({
    title: 'Node',
    nav: 'nodes',
    wants: (evs) => evs.some((e) => (e.Topic === 'Node' && e.Key === id) ||
      (e.Topic === 'Allocation' && e.Payload.Allocation && e.Payload.Allocation.NodeID === id)),
    async load(signal) {
      const [nodes, allocs] = await Promise.all([api('/v1/nodes', signal), api('/v1/allocations', signal).catch(() => [])]);
      const n = nodes.find((x) => x.ID === id);
      if (!n) return h('p', { role: 'alert' }, `No node ${id}.`);
      const mine = allocs.filter((a) => a.NodeID === id && isLive(a));
      return h('div', {},
        h('h1', {}, `Node ${n.Name}`),
        dl([
          ['ID', h('code', {}, n.ID)],
          ['Datacenter', n.Datacenter],
          ['Address', n.Address],
          ['Status', badge(n.Status)],
          ['Eligibility', n.Drain ? 'draining' : (n.Eligible ? 'eligible' : 'ineligible')],
          ['Capacity', `${n.Capacity.CPU} MHz, ${n.Capacity.MemoryMB} MiB`],
          ['Registered', when(n.LastRegister)],
        ]),
        h('section', { 'aria-labelledby': 'drivers-h' },
          h('h2', { id: 'drivers-h' }, 'Drivers'),
          table('Drivers', ['Driver', 'Health'],
            Object.entries(n.Drivers || {}).sort().map(([d, ok]) => [d, ok ? badge('healthy') : badge('unhealthy')]))),
        Object.keys(n.HostVolumes || {}).length ? h('section', { 'aria-labelledby': 'vols-h' },
          h('h2', { id: 'vols-h' }, 'Host volumes'),
          table('Host volumes', ['Volume', 'Read-only'],
            Object.entries(n.HostVolumes).sort().map(([name, v]) => [name, v.ReadOnly ? 'yes' : 'no']))) : null,
        h('section', { 'aria-labelledby': 'nallocs-h' },
          h('h2', { id: 'nallocs-h' }, 'Allocations'),
          table('Allocations', ['Allocation', 'Job', 'Group', 'Status'],
            mine.map((a) => [allocLink(a.ID), jobLink(a.JobID), a.Group, badge(a.ClientStatus)]))));
    },
  }),

  services: () => ({
    title: 'Services',
    nav: 'services',
    wants: (evs) => evs.some((e) => e.Topic === 'Allocation'),
    async load(signal) {
      const names = Object.keys(await api('/v1/services', signal)).sort();
      const all = await Promise.all(names.map((n) => api(`/v1/service/${encodeURIComponent(n)}`, signal)));
      return h('div', {},
        h('h1', {}, 'Services'),
        names.length ? null : h('p', { class: 'empty' }, 'No services: a task registers one with a service block.'),
        names.map((name, i) => {
          const eps = all[i];
          const healthy = eps.filter((e) => e.Healthy).length;
          return h('section', { 'aria-labelledby': `svc-${i}` },
            h('h2', { id: `svc-${i}` }, name, ' ', h('small', {}, `${healthy}/${eps.length} passing`)),
            h('p', {}, 'DNS: ', h('code', {}, `${name}.service.strata`)),
            table(`Instances of ${name}`, ['Address', 'Node', 'Allocation', 'Health', 'Tags'],
              eps.map((e) => [`${e.Address}:${e.Port}`, nodeLink(e.NodeID, e.NodeName), allocLink(e.AllocID),
                e.Healthy ? badge('passing') : badge('critical'), [(e.Tags || []).join(', '), e.Canary ? ' (canary)' : '']])));
        }));
    },
  }),

  servers: () => ({
    title: 'Servers',
    nav: 'servers',
    wants: () => false,
    poll: 10000, // membership is not in the event stream
    async load(signal) {
      const m = await api('/v1/agent/members', signal);
      return h('section', { 'aria-labelledby': 'servers-h' },
        h('h1', { id: 'servers-h' }, 'Servers'),
        h('p', {}, 'As seen by server ', h('code', {}, m.ServerID), '.'),
        table('Servers', ['Server', 'Raft address', 'HTTP address', 'Status', 'Role', 'Applied index'],
          m.Members.map((s) => [s.ID, s.RaftAddr, s.HTTPAddr || '—', badge(s.Status),
            s.Leader ? 'leader' : (s.Voter ? 'follower' : 'non-voter'), s.LastIndex ? String(s.LastIndex) : (s.Error || '—')])));
    },
  }),
};

function summary(counts) {
  const parts = Object.entries(counts || {}).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`);
  return parts.length ? parts.join(', ') : 'none';
}

function drivers(ds) {
  return Object.entries(ds || {}).sort().map(([d, ok]) => `${d}${ok ? '' : ' (unhealthy)'}`).join(', ');
}

function eventJob(e) {
  if (e.Topic === 'Job') return e.Key;
  const p = e.Payload || {};
  if (p.Allocation) return p.Allocation.JobID;
  if (p.Deployment) return p.Deployment.JobID;
  return '';
}

function taskSection(name, ts) {
  const hid = `task-${name.replace(/[^a-zA-Z0-9_-]/g, '_')}`;
  const events = ((ts && ts.Events) || []).slice().reverse();
  return h('section', { 'aria-labelledby': hid },
    h('h2', { id: hid }, `Task ${name}`),
    ts ? dl([['State', badge(ts.State)], ['Restarts', String(ts.Restarts || 0)], ['Started', when(ts.StartedAt)],
      ts.FinishedAt ? ['Finished', when(ts.FinishedAt)] : null]) : h('p', {}, 'Not reported by its agent yet.'),
    table(`Events of task ${name}`, ['Time', 'Event', 'Message'],
      events.map((e) => [when(e.Time), e.Type, e.Message || ''])));
}

// logViewer shows a task's log, followed live (the log API with
// follow=true), for the task and stream the user picks.
function logViewer(allocID) {
  let ctrl = null;
  let tasks = [];
  const pre = h('pre', { class: 'log', id: 'log', tabindex: 0, 'aria-label': 'Task log' });
  const taskSel = h('select', { id: 'log-task', onchange: start });
  const typeSel = h('select', { id: 'log-type', onchange: start },
    h('option', { value: 'stdout' }, 'stdout'), h('option', { value: 'stderr' }, 'stderr'));
  const status = h('p', { class: 'log-status', role: 'status' });
  const node = h('section', { 'aria-labelledby': 'logs-h', class: 'logs' },
    h('h2', { id: 'logs-h' }, 'Logs'),
    h('div', { class: 'log-controls' },
      h('label', { for: 'log-task' }, 'Task '), taskSel,
      h('label', { for: 'log-type' }, ' Stream '), typeSel),
    status, pre);

  async function start() {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    const signal = ctrl.signal;
    pre.textContent = '';
    const task = taskSel.value;
    if (!task) return;
    status.textContent = `Following ${task} ${typeSel.value}…`;
    const q = new URLSearchParams({ task, type: typeSel.value, follow: 'true' });
    try {
      const resp = await fetch(`/v1/client/allocation/${encodeURIComponent(allocID)}/logs?${q}`, { headers: headers(), signal });
      if (!resp.ok) {
        const body = await resp.json().catch(() => ({}));
        status.textContent = `No log: ${body.error || resp.status}`;
        return;
      }
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.append(value);
        if (atEnd) pre.scrollTop = pre.scrollHeight;
      }
      status.textContent = 'The log stream ended.';
    } catch (e) {
      if (e.name !== 'AbortError') status.textContent = `Log stream failed: ${e.message}`;
    }
  }

  return {
    node,
    setTasks(names) {
      if (names.join('\n') === tasks.join('\n')) return;
      tasks = names;
      const was = taskSel.value;
      taskSel.replaceChildren(...names.map((n) => h('option', { value: n }, n)));
      if (names.includes(was)) taskSel.value = was;
      if (taskSel.value !== was || !ctrl) start();
    },
    stop() {
      if (ctrl) ctrl.abort();
    },
  };
}

// ---- routing and refreshing ----------------------------------------------

function route() {
  const path = location.hash.replace(/^#\/?/, '').split('&')[0];
  const [name, ...rest] = path.split('/');
  const arg = decodeURIComponent(rest.join('/'));
  switch (name) {
    case '':
    case 'jobs': return pages.jobs();
    case 'job': return pages.job(arg);
    case 'allocation': return pages.allocation(arg);
    case 'nodes': return pages.nodes();
    case 'node': return pages.node(arg);
    case 'services': return pages.services();
    case 'servers': return pages.servers();
  }
  return null;
}

let loadCtrl = null;
let pollTimer = 0;

async function show() {
  if (session.page && session.page.dispose) session.page.dispose();
  clearInterval(pollTimer);
  const page = route();
  session.page = page;
  const view = document.getElementById('view');
  for (const a of document.querySelectorAll('nav a')) {
    if (page && a.dataset.nav === page.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!page) {
    document.title = 'Not found · Strata';
    view.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, 'No such page. ', link('#/jobs', 'Go to the jobs.')));
    return;
  }
  document.title = `${page.title} · Strata`;
  view.replaceChildren(h('div', { id: 'page' }), page.keep || '');
  if (page.poll) pollTimer = setInterval(refresh, page.poll);
  await refresh();
  document.getElementById('main').focus({ preventScroll: true });
}

// refresh loads the page's body again and swaps it in.
async function refresh() {
  const page = session.page;
  if (!page) return;
  if (loadCtrl) loadCtrl.abort();
  loadCtrl = new AbortController();
  const view = document.getElementById('view');
  view.setAttribute('aria-busy', 'true');
  let body;
  try {
    body = await page.load(loadCtrl.signal);
  } catch (e) {
    if (e.name === 'AbortError') return;
    body = e instanceof AuthError ? tokenForm(e.message) : h('p', { role: 'alert', class: 'error' }, e.message);
  }
  if (session.page !== page) return;
  const slot = document.getElementById('page');
  if (slot) slot.replaceChildren(body);
  view.setAttribute('aria-busy', 'false');
}

function scheduleRefresh() {
  clearTimeout(session.refreshTimer);
  session.refreshTimer = setTimeout(refresh, 150);
}

function tokenForm(why) {
  const input = h('input', { id: 'token-input', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  return h('form', {
    class: 'token', 'aria-labelledby': 'token-h',
    onsubmit: (ev) => {
      ev.preventDefault();
      setToken(input.value.trim());
      restartStream();
      refresh();
    },
  },
  h('h1', { id: 'token-h' }, 'An ACL token is needed'),
  h('p', { role: 'alert' }, why),
  h('p', {}, 'Enter the secret ID of a token (', h('code', {}, 'strata acl token create'),
    '). It is kept in this tab\'s session storage only. A link may also carry it once as ', h('code', {}, '#token=…'), '.'),
  h('label', { for: 'token-input' }, 'Token secret ID'), ' ', input, ' ',
  h('button', { type: 'submit' }, 'Use token'));
}

// ---- the event stream ------------------------------------------------------

function setLive(text, ok) {
  const el = document.getElementById('live');
  el.textContent = text;
  el.dataset.state = ok ? 'live' : 'down';
}

function restartStream() {
  if (session.stream) session.stream.abort();
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

// followEvents holds one event stream subscription for the page's life,
// resuming after the last index it saw when it reconnects (from scratch,
// with a fresh load of the page, when the server no longer has that index).
async function followEvents() {
  let backoff = 1000;
  for (;;) {
    const ctrl = new AbortController();
    session.stream = ctrl;
    try {
      const q = new URLSearchParams(TOPICS.map((t) => ['topic', t]));
      if (session.lastIndex) q.set('index', String(session.lastIndex));
      const resp = await fetch(`/v1/event/stream?${q}`, { headers: headers(), signal: ctrl.signal, cache: 'no-store' });
      if (resp.status === 400 && session.lastIndex) {
        session.lastIndex = 0; // a gap: start again from now, and reload
        continue;
      }
      if (resp.status === 403) {
        setLive('Not live: the token cannot read the event stream', false);
        await sleep(60000, ctrl.signal); // until a token is given
        continue;
      }
      if (!resp.ok) throw new Error(`event stream: ${resp.status}`);
      setLive('Live', true);
      backoff = 1000;
      if (!session.lastIndex) scheduleRefresh(); // what changed before the subscription
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.trim()) onLine(JSON.parse(line));
        }
      }
    } catch (e) {
      if (e.name === 'AbortError') {
        continue; // a new token: subscribe again at once
      }
    }
    setLive('Reconnecting…', false);
    await sleep(backoff, ctrl.signal);
    backoff = Math.min(backoff * 2, 30000);
  }
}

function onLine(msg) {
  if (msg.Error) {
    if (/no longer kept/.test(msg.Error)) session.lastIndex = 0;
    return;
  }
  if (!msg.Index) return; // a heartbeat
  session.lastIndex = msg.Index;
  document.body.dataset.eventIndex = String(msg.Index);
  if (session.page && session.page.wants(msg.Events || [])) scheduleRefresh();
}

// ---- start ----------------------------------------------------------------

takeTokenFromFragment();
setToken(session.token);
document.getElementById('forget-token').addEventListener('click', () => {
  setToken('');
  restartStream();
  refresh();
});
window.addEventListener('hashchange', () => {
  if (/(^#|&)token=/.test(location.hash)) takeTokenFromFragment();
  show();
});
show();
followEvents();
