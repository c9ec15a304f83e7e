// Baileys against the fake WhatsApp server (client-neutrality smoke test).
//
//   cargo run -p fakewa -- --listen 127.0.0.1:4000 &
//   cd tests/fakewa/baileys && npm ci --legacy-peer-deps && node smoke.mjs http://127.0.0.1:4000
//
// QR pairing through the admin API → 515 restart (Baileys never reconnects by
// itself: the script builds a new socket) → open → send a text to a fake
// contact (checked in GET /admin/messages) → a contact sends text back.
// Exit code 0 = all steps passed. Fictitious numbers only.
import makeWASocket, { useMultiFileAuthState, DisconnectReason } from 'baileys'
import P from 'pino'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const base = process.argv[2] ?? 'http://127.0.0.1:4000'
const url = base.replace(/^http/, 'ws') + '/ws/chat'
const { state, saveCreds } = await useMultiFileAuthState(mkdtempSync(join(tmpdir(), 'fakewa-baileys-')))
let linked = null
const fail = (why, code) => { console.log('FAILED:', why); process.exit(code) }
const timer = setTimeout(() => fail('timeout', 2), 60000)

function start() {
  const sock = makeWASocket({
    auth: state,
    waWebSocketUrl: url,
    logger: P({ level: process.env.LOG ?? 'silent' }),
    syncFullHistory: false,
    markOnlineOnConnect: false,
  })
  sock.ev.on('creds.update', saveCreds)
  sock.ev.on('connection.update', async (u) => {
    if (u.qr && !linked) {
      const r = await fetch(base + '/admin/mock-phone/scan-qr', { method: 'POST', body: u.qr })
      if (r.status !== 200) fail(`scan-qr returned ${r.status}`, 3)
      linked = await r.json()
      console.log('paired', linked.jid)
    }
    if (u.connection === 'open') {
      console.log('open', sock.user?.id)
      await sock.sendMessage('15550002222@s.whatsapp.net', { text: 'hello from baileys' })
      let decrypted = false
      for (let i = 0; i < 50 && !decrypted; i++) {
        const msgs = await (await fetch(base + '/admin/messages')).json()
        decrypted = msgs.some((m) => m.text === 'hello from baileys' && m.from === linked.phone)
        if (!decrypted) await new Promise((r) => setTimeout(r, 100))
      }
      if (!decrypted) fail('the contact did not decrypt the message', 4)
      console.log('contact decrypted the message')
      await fetch(base + '/admin/contacts/15550003333/messages', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ to: linked.phone, text: 'hi baileys' }),
      })
    }
    if (u.connection === 'close') {
      const code = u.lastDisconnect?.error?.output?.statusCode
      if (code === DisconnectReason.restartRequired) start()
      else fail(`connection closed (${code})`, 5)
    }
  })
  sock.ev.on('messages.upsert', ({ messages }) => {
    if (messages.some((m) => m.message?.conversation === 'hi baileys')) {
      console.log('received the contact message\nOK')
      clearTimeout(timer)
      process.exit(0)
    }
  })
}
start()
