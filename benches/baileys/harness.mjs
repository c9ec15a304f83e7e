// Baileys side of the wagate capacity benchmarks (issue 8).
//
// One Node process holds N tenants, one Baileys socket each, against the fake
// WhatsApp server (`fakewa`), so that the same measurements the capacity suite
// takes of wagate can be taken of Baileys on the same server, in the same run.
//
//   node harness.mjs link         --ws WS --admin URL --n N [--auth memory|file] [--dir DIR]
//   node harness.mjs restore      --ws WS --admin URL --n N --dir DIR
//   node harness.mjs create_to_qr --ws WS --admin URL --n N [--burst]
//   node harness.mjs send         --ws WS --admin URL --rate R --duration S [--dir DIR | --n N]
//   node harness.mjs inbound      --ws WS --admin URL --rate R --duration S [--dir DIR | --n N]
//
// Output contract: logs go to stderr; stdout carries exactly one line,
// `READY {json}` (link, restore: then the process idles, answering keepalives,
// until SIGTERM, and ends its sockets without logging out), `RESULT {json}`
// (create_to_qr, send, inbound: then it exits) or `FAILED {json}` when it
// could not measure at all. Tenants that fail are counted in `failed`, never
// dropped; the exit code is non-zero when any tenant failed or any send erred.
//
// What each command measures and why (see README.md for figures):
// - link: RssAnon of the whole process with N linked, connected, idle
//   sessions: the memory an operator pays per session. Pairing goes through
//   the fake phone (admin `scan-qr` with the QR each socket emits).
// - restore: time from process start (so Node start-up and loading auth
//   from disk count, as in a real restart) until each tenant is open again;
//   t50/t90/t100 over tenants.
// - create_to_qr: socket creation → first QR (`connection.update.qr`),
//   sequentially (one at a time) or in a burst (all at once).
// - send: open-loop sends at a fixed rate; latency from the send's scheduled
//   time (so a stalled event loop shows up instead of being hidden, no
//   coordinated omission) to `sendMessage` resolving and to the server's
//   `<ack class="message">`. Baileys resolves `sendMessage` once the stanza
//   is written to the socket, not on the server's ack: both are reported.
// - inbound: fake contacts send at a fixed rate through the admin API;
//   latency from the admin request to `messages.upsert`, and messages/s.
import makeWASocket, {
  DisconnectReason,
  generateMessageIDV2,
  initAuthCreds,
  useMultiFileAuthState,
} from 'baileys'
import P from 'pino'
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import v8 from 'node:v8'
import vm from 'node:vm'

// ---------------------------------------------------------------- plumbing

// Dependencies (libsignal) print to stdout with console.log/info; stdout is
// reserved for the one result line, so every console method goes to stderr.
for (const m of ['log', 'info', 'warn', 'debug', 'trace']) console[m] = console.error

const { positionals, values: opt } = parseArgs({
  allowPositionals: true,
  options: {
    ws: { type: 'string' },
    admin: { type: 'string' },
    auth: { type: 'string', default: 'memory' },
    dir: { type: 'string' },
    n: { type: 'string', default: '1' },
    first: { type: 'string', default: '0' },
    burst: { type: 'boolean', default: false },
    rate: { type: 'string', default: '10' },
    duration: { type: 'string', default: '10' },
    concurrency: { type: 'string' },
    timeout: { type: 'string', default: '600' },
    settle: { type: 'string', default: '2' },
    'base-phone': { type: 'string', default: '15550000000' },
    contact: { type: 'string', default: '15559990001' },
  },
})
const command = positionals[0]
const N = int('n')
// Tenant indices FIRST … FIRST+N-1 (phone base-phone+i, directory tenant-i):
// lets several `link` processes fill one file-auth directory in batches.
const FIRST = int('first')
const TIMEOUT_MS = num('timeout') * 1000
const log = P({ level: process.env.LOG_LEVEL ?? 'warn' }, P.destination(2))
// Baileys' own logger: silent unless asked (it is chatty at info).
const baileysLog = P({ level: process.env.BAILEYS_LOG_LEVEL ?? 'silent' }, P.destination(2))

function num(name) {
  const v = Number(opt[name])
  if (!Number.isFinite(v) || v < 0) die(`--${name} must be a non-negative number`)
  return v
}
function int(name) {
  const v = num(name)
  if (!Number.isInteger(v)) die(`--${name} must be an integer`)
  return v
}
/** The one stdout line. */
function emit(tag, obj) {
  process.stdout.write(`${tag} ${JSON.stringify(obj)}\n`)
}
function die(message) {
  emit('FAILED', { error: message })
  process.exit(2)
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const round = (x, d = 3) => (x == null ? null : Math.round(x * 10 ** d) / 10 ** d)
/** Nearest-rank quantile of an unsorted sample (null when empty). */
function quantile(xs, q) {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]
}
/** RssAnon and VmRSS of this process in KiB (Linux). */
function rssKib() {
  const status = readFileSync('/proc/self/status', 'utf8')
  const field = (k) => Number(status.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN)
  return { anon: field('RssAnon'), total: field('VmRSS') }
}
/**
 * Memory as found (what an operator's `ps` shows after the work so far:
 * V8 keeps heap it grew into), then after a forced full GC (the live
 * steady-state cost, which V8 converges to when idle). Both are reported.
 */
async function memReport() {
  const before = rssKib()
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc')
  gc()
  await sleep(100)
  gc()
  const after = rssKib()
  const { heapUsed, external } = process.memoryUsage()
  return {
    rss_anon_kib: before.anon,
    rss_kib: before.total,
    rss_anon_after_gc_kib: after.anon,
    heap_used_kib: Math.round(heapUsed / 1024),
    external_kib: Math.round(external / 1024),
  }
}
/** Run `fn` over `items` with at most `limit` in flight (0 = all at once). */
async function pool(items, limit, fn) {
  if (!limit || limit >= items.length) return Promise.all(items.map(fn))
  let next = 0
  const worker = async () => {
    while (next < items.length) await fn(items[next++])
  }
  await Promise.all(Array.from({ length: limit }, worker))
}

// ---------------------------------------------------------------- auth state

/** Baileys' key store kept in a plain object: the in-memory profile. */
function memoryAuth() {
  const keys = {}
  return {
    state: {
      creds: initAuthCreds(),
      keys: {
        get: async (type, ids) => {
          const out = {}
          for (const id of ids) {
            const v = keys[type]?.[id]
            if (v !== undefined) out[id] = v
          }
          return out
        },
        set: async (data) => {
          for (const type in data) {
            keys[type] ??= {}
            for (const id in data[type]) {
              if (data[type][id]) keys[type][id] = data[type][id]
              else delete keys[type][id]
            }
          }
        },
      },
    },
    saveCreds: async () => {},
  }
}

const tenantDir = (i) => join(opt.dir, `tenant-${i}`)

// ---------------------------------------------------------------- tenants

/**
 * One tenant: an auth state and the current Baileys socket. Baileys never
 * reconnects by itself, so this does what an application must: a new socket
 * on 515 (restart required, after pairing) and on transient closes; 401
 * (logged out) and 440 (replaced) are terminal.
 */
class Tenant {
  constructor(i, auth) {
    this.i = i
    this.phone = String(BigInt(opt['base-phone']) + BigInt(i))
    this.auth = auth
    this.sock = null
    this.openAt = null // ms since process start when first open
    this.error = null // why it failed, if it did
    this.reconnects = 0 // closes after the first open (health signal)
    this.stopping = false
    this.pendingSaves = new Set()
    this.opened = new Promise((resolve, reject) => {
      this.resolveOpen = resolve
      this.rejectOpen = reject
    })
    this.opened.catch(() => {}) // observed via this.error
  }

  /**
   * The phone the tenant is linked to: from its saved credentials when
   * restored (`--base-phone` belongs to the link run, not to this one).
   */
  get linkedPhone() {
    const id = this.auth?.state?.creds?.me?.id
    return id ? id.split(/[:@]/)[0] : this.phone
  }

  /** Open a socket; `pair` scans its QR with the fake phone, otherwise a QR is a failure. */
  start({ pair }) {
    const sock = makeWASocket({
      auth: this.auth.state,
      waWebSocketUrl: opt.ws,
      logger: baileysLog,
      syncFullHistory: false,
      markOnlineOnConnect: false,
      connectTimeoutMs: 60_000,
    })
    this.sock = sock
    sock.ev.on('creds.update', () => this.save())
    sock.ev.on('connection.update', (u) => this.onUpdate(sock, u, pair))
    return sock
  }

  save() {
    const p = this.auth.saveCreds().catch((err) => log.error({ err, tenant: this.i }, 'saving creds failed'))
    this.pendingSaves.add(p)
    p.finally(() => this.pendingSaves.delete(p))
  }

  async onUpdate(sock, u, pair) {
    if (u.qr) {
      if (!pair) return this.fail('asked to pair again (not linked)')
      if (this.scanned) return // a rotated QR while the first scan is in flight
      this.scanned = true
      try {
        const r = await fetch(`${opt.admin}/admin/mock-phone/scan-qr?phone=${this.phone}`, {
          method: 'POST',
          body: u.qr,
        })
        if (r.status !== 200) this.fail(`scan-qr returned ${r.status}: ${await r.text()}`)
      } catch (err) {
        this.fail(`scan-qr: ${err.message}`)
      }
    }
    if (u.connection === 'open' && this.openAt == null) {
      this.openAt = performance.now()
      this.resolveOpen()
    }
    if (u.connection === 'close') {
      if (this.stopping || sock !== this.sock) return
      const code = u.lastDisconnect?.error?.output?.statusCode
      if (code === DisconnectReason.restartRequired) return this.start({ pair: false })
      if (code === DisconnectReason.loggedOut || code === DisconnectReason.connectionReplaced) {
        return this.fail(`connection closed (${code})`)
      }
      if (this.openAt == null) return this.fail(`connection closed before open (${code})`)
      this.reconnects++
      log.warn({ tenant: this.i, code }, 'connection closed while idle; reconnecting')
      this.start({ pair: false })
    }
  }

  fail(why) {
    if (this.error) return
    this.error = why
    log.error({ tenant: this.i, why }, 'tenant failed')
    this.rejectOpen(new Error(why))
    this.stop()
  }

  /** End the socket without logging out (the session stays linked). */
  stop() {
    this.stopping = true
    this.sock?.end(undefined)
  }

  async flush() {
    await Promise.all([...this.pendingSaves])
  }
}

/** Open `tenants` (at most `limit` connecting at once) and wait for each to open or fail. */
async function openAll(tenants, { pair, limit }) {
  const deadline = setTimeout(() => {
    for (const t of tenants) if (t.openAt == null) t.fail('timed out')
  }, TIMEOUT_MS)
  await pool(tenants, limit, async (t) => {
    if (t.error) return // timed out before its turn
    t.start({ pair })
    await t.opened.catch(() => {})
  })
  clearTimeout(deadline)
  const failed = tenants.filter((t) => t.error)
  if (failed.length) {
    const reasons = {}
    for (const t of failed) reasons[t.error] = (reasons[t.error] ?? 0) + 1
    log.error({ failed: failed.length, reasons }, 'tenants failed')
  }
  return failed.length
}

/** Build N tenants: fresh ones to pair (memory or file auth), or saved ones to restore. */
async function makeTenants({ restore }) {
  const auth = restore ? 'file' : opt.auth
  if (auth !== 'memory' && auth !== 'file') die('--auth must be memory or file')
  if (auth === 'file' && !opt.dir) die('--dir is required with file auth')
  const tenants = []
  for (let i = FIRST; i < FIRST + N; i++) {
    if (auth === 'memory') {
      tenants.push(new Tenant(i, memoryAuth()))
      continue
    }
    if (restore && !existsSync(join(tenantDir(i), 'creds.json'))) {
      const t = new Tenant(i, null)
      t.error = 'no saved auth state'
      tenants.push(t)
      continue
    }
    tenants.push(new Tenant(i, await useMultiFileAuthState(tenantDir(i))))
  }
  return tenants
}

/** Tenants for send/inbound: restored from --dir when given, else freshly paired in memory. */
async function readyTenants() {
  const restore = Boolean(opt.dir)
  const tenants = await makeTenants({ restore })
  const pending = tenants.filter((t) => !t.error)
  const failed = (await openAll(pending, { pair: !restore, limit: concurrency(restore ? 0 : 20) })) +
    (tenants.length - pending.length)
  return { tenants: tenants.filter((t) => !t.error), failed }
}

function concurrency(dflt) {
  return opt.concurrency === undefined ? dflt : int('concurrency')
}

/**
 * On SIGTERM/SIGINT (while opening or idling after READY): end every socket
 * (no logout), flush saved state and exit; non-zero when READY was never
 * printed or any tenant failed.
 */
function stopOnSignal(tenants, isReady) {
  const shutdown = async (sig) => {
    log.warn({ sig }, 'stopping')
    for (const t of tenants) t.stop()
    await Promise.all(tenants.map((t) => t.flush()))
    const reconnects = tenants.reduce((a, t) => a + t.reconnects, 0)
    const failed = tenants.filter((t) => t.error).length
    log.warn({ ready: isReady(), failed, reconnects }, 'stopped')
    process.exit(!isReady() || failed ? 1 : 0)
  }
  process.once('SIGTERM', shutdown)
  process.once('SIGINT', shutdown)
}

// ---------------------------------------------------------------- commands

async function link() {
  const t0 = performance.now()
  const tenants = await makeTenants({ restore: false })
  let ready = false
  stopOnSignal(tenants, () => ready)
  const failed = await openAll(tenants, { pair: true, limit: concurrency(20) })
  const elapsed = (performance.now() - t0) / 1000
  await Promise.all(tenants.map((t) => t.flush()))
  await sleep(num('settle') * 1000) // let post-login traffic finish before measuring
  emit('READY', {
    pid: process.pid,
    n: N,
    auth: opt.auth,
    open: N - failed,
    failed,
    elapsed_s: round(elapsed),
    // sockets that closed after opening (keepalive lost, …) and were reopened
    reconnects: tenants.reduce((a, t) => a + t.reconnects, 0),
    ...(await memReport()),
  })
  ready = true
}

async function restore() {
  if (!opt.dir) die('restore needs --dir')
  // Times are since process start: a restart's cost includes Node start-up
  // and reading the auth state.
  const tenants = await makeTenants({ restore: true })
  let ready = false
  stopOnSignal(tenants, () => ready)
  const pending = tenants.filter((t) => !t.error)
  const failed = (await openAll(pending, { pair: false, limit: concurrency(0) })) +
    (tenants.length - pending.length)
  const opens = tenants.filter((t) => t.openAt != null).map((t) => t.openAt / 1000).sort((a, b) => a - b)
  // Time until q of all N tenants were open (null if fewer ever opened).
  const at = (q) => round(opens[Math.max(0, Math.ceil(q * N) - 1)] ?? null)
  const cpu = process.cpuUsage()
  emit('READY', {
    pid: process.pid,
    n: N,
    open: opens.length,
    failed,
    elapsed_s: round(Math.max(0, ...opens)),
    t50_s: at(0.5),
    t90_s: at(0.9),
    t100_s: at(1),
    cpu_s: round((cpu.user + cpu.system) / 1e6),
    ...(await memReport()),
  })
  ready = true
}

async function createToQr() {
  const samples = []
  let failed = 0
  const one = async () => {
    const t0 = performance.now()
    const sock = makeWASocket({
      auth: memoryAuth().state,
      waWebSocketUrl: opt.ws,
      logger: baileysLog,
      syncFullHistory: false,
      markOnlineOnConnect: false,
    })
    const ok = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), TIMEOUT_MS)
      sock.ev.on('connection.update', (u) => {
        if (u.qr) {
          samples.push(performance.now() - t0)
          clearTimeout(timer)
          resolve(true)
        } else if (u.connection === 'close') {
          clearTimeout(timer)
          resolve(false)
        }
      })
    })
    if (!ok) failed++
    sock.end(undefined)
  }
  if (opt.burst) await Promise.all(Array.from({ length: N }, one))
  else for (let i = 0; i < N; i++) await one()
  emit('RESULT', {
    mode: opt.burst ? 'burst' : 'single',
    n: N,
    failed,
    p50_ms: round(quantile(samples, 0.5)),
    p99_ms: round(quantile(samples, 0.99)),
    max_ms: round(samples.length ? Math.max(...samples) : null),
  })
  process.exit(failed ? 1 : 0)
}

/**
 * Calls `fire(k, scheduledAt)` at a fixed rate for `durationS` seconds,
 * open loop: the k-th call is due at t0 + k/rate whatever earlier calls do.
 */
async function openLoop(rate, durationS, fire) {
  const total = Math.floor(rate * durationS)
  const t0 = performance.now() + 5
  for (let k = 0; k < total; ) {
    const now = performance.now()
    // Fire everything due (catching up after a late timer), then sleep.
    while (k < total && t0 + (k * 1000) / rate <= now) fire(k, t0 + (k * 1000) / rate), k++
    if (k < total) await sleep(Math.max(0, t0 + (k * 1000) / rate - performance.now()))
  }
  return total
}

async function send() {
  const rate = num('rate')
  const { tenants, failed } = await readyTenants()
  if (tenants.length === 0) die(`no tenant connected (${failed} failed)`)
  const to = `${opt.contact}@s.whatsapp.net`
  // Server acks by message id, from the raw stanza stream (Baileys does not
  // surface successful acks).
  const acks = new Map()
  for (const t of tenants) {
    t.sock.ws.on('CB:ack,class:message', (node) => acks.get(node.attrs.id)?.(node))
  }
  const sendOne = async (t, text, scheduled) => {
    const id = generateMessageIDV2(t.sock.user?.id)
    const acked = new Promise((resolve) => acks.set(id, resolve))
    await t.sock.sendMessage(to, { text }, { messageId: id })
    const resolvedMs = performance.now() - scheduled
    const timeout = sleep(30_000).then(() => null)
    const ack = await Promise.race([acked, timeout])
    acks.delete(id)
    if (!ack) throw new Error('no server ack within 30 s')
    if (ack.attrs.error) throw new Error(`server ack error ${ack.attrs.error}`)
    return { resolvedMs, ackMs: performance.now() - scheduled }
  }
  // Warm-up: one send per tenant sets up its Signal session with the
  // contact (device list, prekey bundle); not part of the figures.
  await Promise.all(tenants.map((t) => sendOne(t, 'warm-up', performance.now()).catch((err) => {
    log.error({ tenant: t.i, err: err.message }, 'warm-up send failed')
  })))
  const resolved = []
  const acked = []
  let errors = 0
  const inflight = []
  const t0 = performance.now()
  const sent = await openLoop(rate, num('duration'), (k, scheduled) => {
    const t = tenants[k % tenants.length]
    inflight.push(sendOne(t, `bench ${k}`, scheduled).then(
      (r) => { resolved.push(r.resolvedMs); acked.push(r.ackMs) },
      (err) => { errors++; log.warn({ tenant: t.i, err: err.message }, 'send failed') },
    ))
  })
  const loopS = (performance.now() - t0) / 1000
  await Promise.all(inflight)
  await finish(tenants, failed, {
    rate,
    sent,
    achieved_rate: round(sent / loopS, 1),
    errors,
    p50_ms: round(quantile(resolved, 0.5)),
    p99_ms: round(quantile(resolved, 0.99)),
    max_ms: round(resolved.length ? Math.max(...resolved) : null),
    ack_p50_ms: round(quantile(acked, 0.5)),
    ack_p99_ms: round(quantile(acked, 0.99)),
    ack_max_ms: round(acked.length ? Math.max(...acked) : null),
  })
}

async function inbound() {
  const rate = num('rate')
  const { tenants, failed } = await readyTenants()
  if (tenants.length === 0) die(`no tenant connected (${failed} failed)`)
  const waiting = new Map() // text → scheduled time
  const latencies = []
  const perSecond = new Map()
  let received = 0
  for (const t of tenants) {
    t.sock.ev.on('messages.upsert', ({ messages, type }) => {
      if (type !== 'notify') return
      for (const m of messages) {
        const text = m.message?.conversation ?? m.message?.extendedTextMessage?.text
        const scheduled = waiting.get(text)
        if (scheduled === undefined) continue
        waiting.delete(text)
        received++
        const now = performance.now()
        latencies.push(now - scheduled)
        const sec = Math.floor(now / 1000)
        perSecond.set(sec, (perSecond.get(sec) ?? 0) + 1)
      }
    })
  }
  let errors = 0
  const t0 = performance.now()
  const sent = await openLoop(rate, num('duration'), (k, scheduled) => {
    const t = tenants[k % tenants.length]
    const text = `inbound ${k}`
    waiting.set(text, scheduled)
    fetch(`${opt.admin}/admin/contacts/${opt.contact}/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: t.linkedPhone, text }),
    }).then(
      async (r) => { if (r.status !== 200) throw new Error(`${r.status} ${await r.text()}`) },
    ).catch((err) => { errors++; waiting.delete(text); log.warn({ err: err.message }, 'contact send failed') })
  })
  // Wait for stragglers (up to 30 s after the last send).
  for (let w = 0; w < 300 && waiting.size > 0; w++) await sleep(100)
  const elapsed = (performance.now() - t0) / 1000
  const lost = waiting.size
  await finish(tenants, failed, {
    rate,
    sent,
    received,
    lost,
    errors,
    msgs_per_s: round(received / elapsed, 1),
    peak_msgs_per_s: Math.max(0, ...perSecond.values()),
    p50_ms: round(quantile(latencies, 0.5)),
    p99_ms: round(quantile(latencies, 0.99)),
  })
}

/** End the sockets (no logout), print the result line, flush saved state, exit (non-zero on any failure). */
async function finish(tenants, failed, result) {
  for (const t of tenants) t.stop()
  emit('RESULT', { n: tenants.length + failed, failed, ...result })
  await Promise.all(tenants.map((t) => t.flush()))
  process.exit(failed || result.errors || result.lost ? 1 : 0)
}

// ---------------------------------------------------------------- main

const commands = { link, restore, create_to_qr: createToQr, send, inbound }
if (!commands[command]) die(`unknown command ${command ?? '(none)'}; one of ${Object.keys(commands).join(', ')}`)
if (!opt.ws || !opt.admin) die('--ws and --admin are required')
process.on('unhandledRejection', (err) => log.error({ err: String(err?.stack ?? err) }, 'unhandled rejection'))
try {
  await commands[command]()
} catch (err) {
  log.error({ err: err.stack }, 'harness failed')
  die(err.message)
}
